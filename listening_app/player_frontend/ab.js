"use strict";
// A/B preference: A and B as two big buttons, then "I prefer A" / "I prefer B" (and "No preference"
// where the test offers it). No reference: buffer 0 only draws.
(() => {
  let answer = null;
  MODES.ab = {
    first: 1, submits: true,
    hint: "Keys: Space play/pause, Esc stop, A, B (or 1, 2) switch stimulus, ←/→ move 1 s.",
    get chosen() { return answer; },
    build(args, {choices, answers}) {
      answer = null;
      choices.classList.add("big");
      labels.forEach((label, i) => choices.appendChild(choiceButton(label, i + 1)));
      ["A", "B"].forEach(letter => answers.appendChild(answerButton("I prefer " + letter, letter, v => { answer = v; })));
      if (args.no_preference) answers.appendChild(answerButton("No preference", "none", v => { answer = v; }));
    },
    missing(which) {
      return (answer === null && rules.unanswered ? [rules.unanswered] : []).concat(unplayedRule(which));
    },
    fill(value) { value.answer = answer; },
    key(key) {
      if (key === "A" || key === "B") { select({A: 1, B: 2}[key]); return true; }
      return false;
    },
  };
})();
