"use strict";
// MOS / ACR (ITU-T P.800): one recording, no reference, five labelled choices from Excellent to Bad.
// The transport's Play button plays it (buffer 0 only draws its waveform).
(() => {
  const style = document.createElement("style");
  style.textContent = `
    fieldset.acr { border: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 2px; }
    fieldset.acr legend { font-size: 16px; font-weight: 600; margin-bottom: 6px; padding: 0; }
    fieldset.acr label { display: flex; align-items: center; gap: 10px; font-size: 17px; padding: 6px 10px;
                         border-radius: 6px; cursor: pointer; width: 240px; }
    fieldset.acr label:hover { background: #f0f2f6; }
    fieldset.acr input { width: 18px; height: 18px; margin: 0; cursor: pointer; }
    fieldset.acr input:disabled, fieldset.acr input:disabled + span { color: #999; cursor: not-allowed; }`;
  document.head.appendChild(style);
  let radios = [];
  // With the test's must-play rule, the choices open once the recording has been played.
  const locked = () => Boolean(rules.unplayed) && !(plays[keys[0]] > 0);
  const rate = value => {
    if (locked()) return;
    scores[keys[0]] = value;
    radios.forEach(r => { r.checked = Number(r.value) === value; });
    render();
  };
  MODES.mos = {
    first: 1, submits: true,
    hint: "Keys: Space play/pause, Esc stop, ←/→ move 1 s, 5 to 1 choose a rating (5 Excellent … 1 Bad).",
    build(args, {answers}) {
      // No waveform: the recording's own shape could hint at its quality, and a rater judges it by ear.
      document.getElementById("wave").style.display = "none";
      const box = document.createElement("fieldset"); box.className = "acr";
      const legend = document.createElement("legend"); legend.textContent = "How good does the recording sound?";
      box.appendChild(legend);
      radios = (args.scale || []).map(([value, label]) => {
        const row = document.createElement("label"), input = document.createElement("input");
        input.type = "radio"; input.name = "acr"; input.value = value;
        input.addEventListener("change", () => rate(value));
        const text = document.createElement("span"); text.textContent = `${value} ${label}`;
        row.append(input, text); box.appendChild(row);
        return input;
      });
      answers.appendChild(box);
    },
    missing(which) {  // called on every redraw: the choices follow the play record here
      radios.forEach(r => { r.disabled = locked(); });
      return unplayedRule(which).concat(scores[keys[0]] === undefined && rules.unrated ? [rules.unrated] : []);
    },
    fill(value) { value.scores = scores; },
    key(key) {
      const focused = document.activeElement;
      if (key.startsWith("ARROW") && focused && focused.type === "radio") return true;  // the radios' own keys
      if (/^[1-5]$/.test(key)) { rate(Number(key)); return true; }
      return false;
    },
  };
})();
