"use strict";
// ABX: A, B and X as three big buttons, then "X is A" / "X is B". No reference: buffer 0 only draws.
(() => {
  let answer = null;
  MODES.abx = {
    first: 1, submits: true,
    hint: "Keys: Space play/pause, Esc stop, A, B, X (or 1, 2, 3) switch stimulus, ←/→ move 1 s.",
    get chosen() { return answer; },
    build(args, {choices, answers}) {
      answer = null;
      choices.classList.add("big");
      labels.forEach((label, i) => choices.appendChild(choiceButton(label, i + 1)));
      ["A", "B"].forEach(letter => answers.appendChild(answerButton("X is " + letter, letter, v => { answer = v; })));
    },
    missing(which) {
      return (answer === null && rules.unanswered ? [rules.unanswered] : []).concat(unplayedRule(which));
    },
    fill(value) { value.answer = answer; },
    key(key) {
      if (key === "A" || key === "B" || key === "X") { select({A: 1, B: 2, X: 3}[key]); return true; }
      return false;
    },
  };
})();
