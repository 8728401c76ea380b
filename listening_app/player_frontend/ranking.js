"use strict";
// Ranking: the reference's button, then two lists: "Your order" (best first) and "Not placed yet".
// Rows move by drag and drop (HTML5) or by their buttons (Place, ▲, ▼, Remove), so a keyboard is enough.
// The submit carries the keys in the rater's order; the server turns places into ranks.
(() => {
  let order = [];  // keys, best first
  let dragged = null;
  const style = document.createElement("style");
  style.textContent = `
    #ranking { display: flex; gap: 16px; align-items: flex-start; width: 100%; flex-wrap: wrap; }
    #ranking .list { flex: 1 1 280px; min-height: 56px; border: 2px dashed #c8cad3; border-radius: 8px; padding: 6px; }
    #ranking .list.over { border-color: #ff4b4b; background: #fff5f5; }
    #ranking h4 { margin: 0 0 6px; font-size: 14px; font-weight: 600; color: #31333f; }
    #ranking .empty { font-size: 13px; color: #888; padding: 8px 4px; }
    .rankrow { display: flex; align-items: center; gap: 6px; padding: 4px 6px; margin: 4px 0; background: #f0f2f6;
               border-radius: 6px; cursor: grab; user-select: none; }
    .rankrow.dragging { opacity: 0.4; }
    .rankrow .place { width: 2.2em; font-weight: 600; text-align: right; }
    .rankrow button.choice { width: 52px; height: 34px; padding: 0; font-weight: 600; }
    .rankrow button.move { padding: 4px 9px; font-size: 14px; }
    .rankrow button.move:disabled { opacity: 0.35; cursor: default; }
    .rankrow .grip { color: #999; margin-left: auto; font-size: 18px; }`;
  document.head.appendChild(style);

  // A row's button; the rows are drawn anew after it acts, so the keyboard's focus goes back to the
  // same button of the same version (or, once that is gone or disabled, its ▲, or its letter).
  function moveButton(text, label, letter, act) {
    const b = document.createElement("button"); b.className = "move"; b.textContent = text;
    b.setAttribute("aria-label", label); b.title = label;
    b.addEventListener("click", () => {
      act(); draw();
      const usable = name => [...document.querySelectorAll("button.move")].find(x => x.getAttribute("aria-label") === name && !x.disabled);
      const again = usable(label) || usable("move " + letter + " up")
        || [...document.querySelectorAll("#ranking button.choice")].find(x => x.textContent === letter);
      if (again) again.focus();
    });
    return b;
  }
  function row(k, place) {
    const i = keys.indexOf(k), r = document.createElement("div");
    r.className = "rankrow"; r.draggable = true; r.dataset.key = k;
    const number = document.createElement("span"); number.className = "place"; number.textContent = place ? place + "." : "";
    r.append(number, choiceButton(labels[i], i + 1));
    if (place) {
      const up = moveButton("▲", "move " + labels[i] + " up", labels[i], () => swap(place - 1, place - 2));
      const down = moveButton("▼", "move " + labels[i] + " down", labels[i], () => swap(place - 1, place));
      up.disabled = place === 1; down.disabled = place === order.length;
      r.append(up, down,
               moveButton("Remove", "remove " + labels[i] + " from the order", labels[i], () => { order = order.filter(x => x !== k); }));
    } else {
      r.append(moveButton("Place", "place " + labels[i] + " last in the order", labels[i], () => { order.push(k); }));
    }
    const grip = document.createElement("span"); grip.className = "grip"; grip.textContent = "⠿"; grip.setAttribute("aria-hidden", "true");
    r.append(grip);
    r.addEventListener("dragstart", ev => { dragged = k; r.classList.add("dragging"); ev.dataTransfer.setData("text/plain", k); ev.dataTransfer.effectAllowed = "move"; });
    r.addEventListener("dragend", () => { dragged = null; r.classList.remove("dragging"); });
    return r;
  }
  function swap(a, b) {
    if (b < 0 || b >= order.length) return;
    [order[a], order[b]] = [order[b], order[a]];
  }
  // Where a drop lands in the order: before the first row whose middle lies below the pointer.
  function dropIndex(list, y) {
    const rows = [...list.querySelectorAll(".rankrow")].filter(r => r.dataset.key !== dragged);
    const at = rows.findIndex(r => { const box = r.getBoundingClientRect(); return y < box.top + box.height / 2; });
    return at < 0 ? rows.length : at;
  }
  function dropZone(list, onDrop) {
    list.addEventListener("dragover", ev => { if (dragged) { ev.preventDefault(); list.classList.add("over"); } });
    list.addEventListener("dragleave", () => list.classList.remove("over"));
    list.addEventListener("drop", ev => {
      ev.preventDefault(); list.classList.remove("over");
      const k = dragged || ev.dataTransfer.getData("text/plain");
      if (keys.includes(k)) { onDrop(k, ev.clientY); draw(); }
    });
  }
  let ranked = null, pool = null;
  function draw() {
    ranked.querySelectorAll(".rankrow, .empty").forEach(e => e.remove());
    pool.querySelectorAll(".rankrow, .empty").forEach(e => e.remove());
    order.forEach((k, n) => ranked.appendChild(row(k, n + 1)));
    const rest = keys.filter(k => !order.includes(k));
    rest.forEach(k => pool.appendChild(row(k, 0)));
    const note = (list, text) => { const d = document.createElement("div"); d.className = "empty"; d.textContent = text; list.appendChild(d); };
    if (!order.length) note(ranked, "Drag versions here, best first, or use their Place buttons.");
    if (!rest.length) note(pool, "Every version is placed.");
    render();
  }
  MODES.ranking = {
    first: 0, submits: true,
    hint: "Keys: Space play/pause, Esc stop, R reference, A, B, C… (or 1, 2, 3…) switch version, ←/→ move 1 s. "
        + "Drag a row to move it, or use its buttons (Tab to a button, Enter).",
    build(args, {choices, sliders}) {
      order = []; dragged = null;
      choices.appendChild(choiceButton("Reference", 0));
      const wrap = document.createElement("div"); wrap.id = "ranking";
      ranked = document.createElement("div"); ranked.className = "list"; ranked.id = "ranked";
      pool = document.createElement("div"); pool.className = "list"; pool.id = "pool";
      const head = (list, text) => { const h = document.createElement("h4"); h.textContent = text; list.appendChild(h); };
      head(ranked, "Your order: best first"); head(pool, "Not placed yet");
      wrap.append(ranked, pool); sliders.appendChild(wrap);
      dropZone(ranked, (k, y) => { const at = dropIndex(ranked, y); order = order.filter(x => x !== k); order.splice(at, 0, k); });
      dropZone(pool, k => { order = order.filter(x => x !== k); });
      draw();
    },
    missing(which) {
      const unranked = which(k => !order.includes(k)), out = [];
      if (unranked && rules.unranked) out.push(rules.unranked.replace("{}", unranked));
      return out.concat(unplayedRule(which));
    },
    fill(value) { value.order = order.slice(); },
    key(key) {
      if (key.length === 1 && key >= "A" && key <= "L" && keys.length >= key.charCodeAt(0) - 64) {
        select(key.charCodeAt(0) - 64); return true;
      }
      return false;
    },
  };
})();
