// minitf explore: draws the numbers minitf computed in Python (the JSON above) as linked
// views. Nothing here computes the model: the lens, attention and attribution values come
// from minitf.lens, minitf.model.forward and minitf.attribution, so the page shows exactly
// what Python says. One state object (which input, position, layer, head, ...) and one
// render function per view; every interaction changes the state and redraws.
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("minitf-data").textContent);
  if (DATA.format !== "minitf-explore-1") {
    throw new Error("this page's data has format " + DATA.format + "; rebuild it with minitf explore");
  }
  const $ = (id) => document.getElementById(id);
  const L = DATA.model.n_layer;
  const H = DATA.model.n_head;
  const labels = new Map();  // token id -> its text as the lens tables show it
  const addLabels = (table) => { for (const [id, text] of Object.entries(table)) labels.set(Number(id), text); };
  addLabels(DATA.vocab.tokens);
  DATA.inputs.forEach((a) => addLabels(a.tokens));
  const label = (id) => (labels.has(id) ? labels.get(id) : "[" + id + "]");
  const quoted = (id) => "\u2018" + label(id) + "\u2019";

  const state = {
    input: 0,        // index into DATA.inputs
    position: 0,     // selected position (token)
    layer: L,        // selected lens row: 0 = embeddings, l = after block l-1
    lens: "logit",   // "logit" or "tuned"
    head: [0, 0],    // enlarged attention head [layer, head]
    query: null,     // attention query being hovered (null: the selected position)
    candidate: null, // token id whose logit the attribution explains (null: the model's top)
    dlaMode: "heads",
    focusCell: null, // [row, position] of the lens cell that takes the Tab key
  };
  const current = () => DATA.inputs[state.input];

  // --- small helpers ------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "style") Object.assign(node.style, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }
  const svgEl = (tag, attrs) => {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    return node;
  };
  // probability (0..1) -> colour of the perceptually uniform map (viridis, from matplotlib)
  function colour(p) {
    const map = DATA.colormap;
    const i = Math.max(0, Math.min(map.length - 1, Math.round(p * (map.length - 1))));
    return map[i];
  }
  function luminance(hex) {  // WCAG relative luminance
    const channel = (k) => {
      const c = parseInt(hex.slice(k, k + 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    };
    return 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
  }
  // black or white text, whichever contrasts more with the background
  function inkOn(hex) {
    const lum = luminance(hex);
    return (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) ? "#000000" : "#ffffff";
  }
  const fixed3 = (x) => x.toFixed(3);
  const layerName = (row) => DATA.layers[row] + (row === L ? " (output)" : "");
  const lensData = () => current().lens[state.lens] || current().lens.logit;

  // Redrawing replaces elements; the one that had the keyboard focus gets it back through
  // its data-focus-key, so keyboard users keep their place.
  function select(change) {
    const active = document.activeElement;
    const key = active && active.dataset ? active.dataset.focusKey : null;
    Object.assign(state, change);
    render();
    if (key) {
      const again = document.querySelector('[data-focus-key="' + key + '"]');
      if (again) again.focus();
    }
  }

  // --- the inputs and their tokens ------------------------------------------------------
  function defaultPosition(a) {
    // a toy problem: the last prompt token (whose next token is the answer's first);
    // otherwise the last token
    return a.prompt_len ? a.prompt_len - 1 : a.ids.length - 1;
  }
  function chooseInput(index) {
    const a = DATA.inputs[index];
    select({ input: index, position: defaultPosition(a), candidate: null, query: null,
             focusCell: null });
  }

  function renderInputs() {
    const list = $("input-list");
    list.replaceChildren(...DATA.inputs.map((a, i) => el("button", {
      type: "button", "aria-pressed": String(i === state.input), "data-index": i,
      "data-focus-key": "input-" + i,
      text: a.shown, onclick: () => chooseInput(i),
    })));
    const a = current();
    $("input-note").textContent = a.note || "";
    const chips = a.ids.map((id, t) => el("button", {
      type: "button", class: "chip" + (a.prompt_len && t >= a.prompt_len ? " answer" : ""),
      "aria-pressed": String(t === state.position), "data-pos": t, "data-focus-key": "chip-" + t,
      "aria-label": "position " + t + ": " + label(id),
      onclick: () => select({ position: t, candidate: null, focusCell: null }),
    }, el("span", { class: "tok", text: label(id) }), el("span", { class: "pos", text: String(t) })));
    $("token-chips").replaceChildren(...chips);
  }

  // --- the logit lens grid --------------------------------------------------------------
  function renderLens() {
    const lens = lensData();
    const a = current();
    const T = a.ids.length;
    const grid = $("lens-grid");
    const head = el("tr", {}, el("th", { scope: "col", text: "layer \u2193 / reads \u2192" }),
      ...a.ids.map((id, t) => el("th", {
        scope: "col", class: "tok" + (t === state.position ? " sel-col" : ""), text: label(id),
        title: "position " + t,
      })));
    if (!state.focusCell) state.focusCell = [state.layer, state.position];
    const rows = [];
    for (let row = L; row >= 0; row--) {  // the output on top, the embeddings at the bottom
      const cells = [el("th", { scope: "row", class: "layer", text: layerName(row) })];
      for (let t = 0; t < T; t++) {
        const top = lens.top_ids[row][t][0];
        const p = lens.top_probs[row][t][0];
        const bg = colour(p);
        const focused = state.focusCell[0] === row && state.focusCell[1] === t;
        cells.push(el("td", {
          class: "cell" + (t === state.position ? " sel-col" : "") +
                 (t === state.position && row === state.layer ? " sel" : ""),
          role: "gridcell", tabindex: focused ? "0" : "-1",
          "data-row": row, "data-pos": t, "data-focus-key": "cell-" + row + "-" + t, text: label(top),
          "aria-label": layerName(row) + ", after " + label(a.ids[t]) + " (position " + t +
                        "): " + label(top) + " " + fixed3(p),
          style: { background: bg, color: inkOn(bg) },
        }));
      }
      rows.push(el("tr", { class: row === state.layer ? "sel-row" : "", "data-row": row }, ...cells));
    }
    // what really comes next in the input, to compare each column with
    const next = el("tr", { class: "next" }, el("th", { scope: "row", class: "layer", text: "next in input" }),
      ...a.ids.map((_, t) => el("td", { class: "tok", text: t + 1 < T ? label(a.ids[t + 1]) : "" })));
    grid.replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows, next));
    // a long input: scroll the grid sideways so the selected column is in view
    const box = grid.parentElement;
    const column = grid.querySelector("thead th.sel-col");
    if (column && (column.offsetLeft < box.scrollLeft ||
                   column.offsetLeft + column.offsetWidth > box.scrollLeft + box.clientWidth)) {
      box.scrollLeft = column.offsetLeft - box.clientWidth / 2;
    }

    const tunedRadio = $("tuned-radio");
    tunedRadio.disabled = !DATA.has_tuned;
    $("tuned-hint").textContent = DATA.has_tuned ? "" :
      "(this model has no tuned lens; `minitf explore CKPT --fit-tuned-lens` fits one)";
    document.querySelectorAll('input[name="lens"]').forEach((r) => { r.checked = r.value === state.lens; });
  }

  function tipFor(cell) {
    const row = Number(cell.dataset.row);
    const t = Number(cell.dataset.pos);
    const lens = lensData();
    const a = current();
    const ids = lens.top_ids[row][t];
    const probs = lens.top_probs[row][t];
    const final = lens.final[t];
    const rows = ids.map((id, k) => el("tr", { class: "tip-row" },
      el("td", { text: String(k + 1) }),
      el("td", { class: "tip-token tok", text: label(id) }),
      el("td", { class: "tip-prob", text: fixed3(probs[k]) }),
      el("td", {}, el("span", { class: "tip-bar", style: { width: (probs[k] * 8).toFixed(2) + "rem" } }))));
    const tip = $("lens-tooltip");
    tip.replaceChildren(
      el("p", {}, el("strong", { text: layerName(row) }), " (" + lens.name + "): the token after " +
        quoted(a.ids[t]) + " (position " + t + ")"),
      el("table", {}, el("tbody", {}, ...rows)),
      el("p", { class: "tip-rank", text: "the model's final prediction " + quoted(final) +
        " ranks " + (lens.rank[row][t] + 1) + " here" }),
      el("p", { class: "tip-kl", text: "KL to the final layer: " + fixed3(lens.kl[row][t]) + " nats" }));
    tip.hidden = false;
    // below the grid, under the cell's column: it never hides another cell of the grid
    const section = $("lens-view").getBoundingClientRect();
    const box = cell.getBoundingClientRect();
    const grid = $("colorbar").getBoundingClientRect();  // the grid, then its colour bar
    let left = box.left - section.left;
    const width = tip.offsetWidth;
    if (left + width > section.width) left = Math.max(0, section.width - width);
    tip.style.left = left + "px";
    tip.style.top = (grid.bottom - section.top + 4) + "px";
  }
  function hideTip() { $("lens-tooltip").hidden = true; }

  function lensEvents() {
    const grid = $("lens-grid");
    const cellOf = (ev) => ev.target.closest ? ev.target.closest("td.cell") : null;
    grid.addEventListener("mouseover", (ev) => { const c = cellOf(ev); if (c) tipFor(c); });
    grid.addEventListener("mouseleave", hideTip);
    grid.addEventListener("focusin", (ev) => { const c = cellOf(ev); if (c) tipFor(c); });
    grid.addEventListener("focusout", hideTip);
    grid.addEventListener("click", (ev) => {
      const c = cellOf(ev);
      if (!c) return;
      const row = Number(c.dataset.row), t = Number(c.dataset.pos);
      select({ layer: row, position: t, candidate: null, focusCell: [row, t] });
    });
    grid.addEventListener("keydown", (ev) => {
      const c = cellOf(ev);
      if (!c) return;
      let row = Number(c.dataset.row), t = Number(c.dataset.pos);
      const T = current().ids.length;
      const moves = { ArrowUp: [1, 0], ArrowDown: [-1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
      if (ev.key in moves) {
        row = Math.max(0, Math.min(L, row + moves[ev.key][0]));
        t = Math.max(0, Math.min(T - 1, t + moves[ev.key][1]));
        ev.preventDefault();
        state.focusCell = [row, t];
        focusLensCell(row, t);
      } else if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        select({ layer: row, position: t, candidate: null, focusCell: [row, t] });
      } else if (ev.key === "Escape") {
        hideTip();
      }
    });
  }
  function focusLensCell(row, t) {
    const grid = $("lens-grid");
    grid.querySelectorAll("td.cell").forEach((c) => { c.tabIndex = -1; });
    const cell = grid.querySelector('td.cell[data-row="' + row + '"][data-pos="' + t + '"]');
    if (cell) { cell.tabIndex = 0; cell.focus(); }
  }

  function renderColorbar() {
    const stops = DATA.colormap.map((c, i) => c + " " + (100 * i / (DATA.colormap.length - 1)).toFixed(1) + "%");
    $("colorbar").replaceChildren(el("span", { text: "probability of the top token: 0" }),
      el("span", { class: "bar", style: { background: "linear-gradient(to right, " + stops.join(", ") + ")" } }),
      el("span", { text: "1" }));
  }

  // --- attention -------------------------------------------------------------------------
  // weight of query t on key s in head (l, h); keys after t are masked (no peeking ahead)
  const weight = (a, l, h, t, s) => (s <= t ? a.attention[l][h][t][s] : null);

  function drawThumb(canvas, a, l, h, query) {
    const T = a.ids.length;
    canvas.width = T;
    canvas.height = T;
    const ctx = canvas.getContext("2d");
    for (let t = 0; t < T; t++) {
      for (let s = 0; s < T; s++) {
        const w = weight(a, l, h, t, s);
        ctx.fillStyle = w === null ? "#e6e6e6" : colour(w);
        ctx.fillRect(s, t, 1, 1);
      }
    }
    if (query !== null) {  // a thin frame around the row of the selected query
      ctx.strokeStyle = "#c4005a";
      ctx.lineWidth = 0.25;
      ctx.strokeRect(0.125, query + 0.125, T - 0.25, 0.75);
    }
  }

  let thumbCanvases = [];  // [layer][head] canvas, redrawn when the query changes
  const shownQuery = () => (state.query === null ? state.position : state.query);

  function renderAttention() {
    const a = current();
    const query = shownQuery();
    thumbCanvases = [];
    const thumbs = $("attention-thumbs");
    thumbs.style.gridTemplateColumns = "max-content repeat(" + H + ", max-content)";
    const items = [];
    for (let l = 0; l < L; l++) {
      // lens row l + 1 reads the stream after block l: the same layer
      items.push(el("span", { class: "row-label" + (state.layer === l + 1 ? " sel" : ""), text: "layer " + l }));
      thumbCanvases.push([]);
      for (let h = 0; h < H; h++) {
        const canvas = el("canvas", { "aria-hidden": "true" });
        thumbCanvases[l].push(canvas);
        drawThumb(canvas, a, l, h, query);
        const pressed = state.head[0] === l && state.head[1] === h;
        items.push(el("button", {
          type: "button", class: "thumb", "aria-pressed": String(pressed), "data-layer": l, "data-head": h,
          "data-focus-key": "thumb-" + l + "-" + h,
          "aria-label": "layer " + l + " head " + h, title: "layer " + l + " head " + h,
          onclick: () => select({ head: [l, h], layer: l + 1 }),
        }, canvas, el("span", { class: "thumb-label", text: "h" + h })));
      }
    }
    thumbs.replaceChildren(...items);
    renderLargeAttention(a, query);
  }

  function renderLargeAttention(a, query) {
    const [l, h] = state.head;
    const T = a.ids.length;
    $("attention-title").textContent = "layer " + l + ", head " + h + ": where each token looks";
    $("attention-large").dataset.layer = l;
    $("attention-large").dataset.head = h;
    const head = el("tr", {}, el("th", { text: "query \u2193 key \u2192" }),
      ...a.ids.map((id, s) => el("th", { scope: "col", class: s === query ? "key-sel" : "", text: label(id) })));
    const rows = a.ids.map((qid, t) => {
      const cells = [el("th", {
        scope: "row", class: "q", "data-q": t, text: label(qid), tabindex: "0", "data-focus-key": "query-" + t,
        "aria-label": "query " + label(qid) + " (position " + t + ")",
        onmouseenter: () => setQuery(t), onfocus: () => setQuery(t),
        onclick: () => select({ position: t, query: null, candidate: null, focusCell: null }),
        onkeydown: (ev) => {
          if (ev.key === "Enter") select({ position: t, query: null, candidate: null, focusCell: null });
        },
      })];
      for (let s = 0; s < T; s++) {
        const w = weight(a, l, h, t, s);
        const text = w === null ? "masked (a later position)" : fixed3(w);
        const bg = w === null ? null : colour(w);
        cells.push(el("td", {
          class: w === null ? "masked" : "w", "data-q": t, "data-k": s, "data-w": w === null ? null : String(w),
          "aria-label": label(qid) + " (" + t + ") looks at " + label(a.ids[s]) + " (" + s + "): " + text,
          title: label(qid) + " (" + t + ") \u2192 " + label(a.ids[s]) + " (" + s + "): " + text,
          style: bg ? { background: bg } : {},
          onmouseenter: () => setQuery(t),
        }));
      }
      return el("tr", { class: t === query ? "query" : "", "data-q": t }, ...cells);
    });
    const table = $("attention-large");
    table.replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
    table.onmouseleave = () => setQuery(null);
    renderKeys(a, query);
  }

  // the key strip: how much the shown query attends to each key, in numbers
  function renderKeys(a, query) {
    const [l, h] = state.head;
    $("attention-keys-title").textContent = "where " + quoted(a.ids[query]) + " (position " + query +
      ") looks in layer " + l + " head " + h + ":";
    $("attention-keys").replaceChildren(...a.ids.map((id, s) => {
      const w = weight(a, l, h, query, s);
      const bg = w === null ? null : colour(w);
      return el("span", {
        class: "key" + (w === null ? " future" : ""), "data-k": s,
        style: bg ? { background: bg, color: inkOn(bg) } : {},
      }, el("span", { class: "tok", text: label(id) }), el("span", { class: "w", text: w === null ? "\u2014" : fixed3(w) }));
    }));
  }
  function setQuery(t) {
    if (state.query === t) return;
    state.query = t;
    const a = current();
    const query = shownQuery();
    document.querySelectorAll("#attention-large tbody tr").forEach((tr) =>
      tr.classList.toggle("query", Number(tr.dataset.q) === query));
    document.querySelectorAll("#attention-large thead th").forEach((th, i) =>
      th.classList.toggle("key-sel", i - 1 === query));
    thumbCanvases.forEach((row, l) => row.forEach((canvas, h) => drawThumb(canvas, a, l, h, query)));
    renderKeys(a, query);
  }

  // --- direct logit attribution ----------------------------------------------------------
  function renderAttribution() {
    const a = current();
    const t = state.position;
    const candidates = a.attribution[t];
    const predicted = candidates[0].id;  // the model's own top token at t
    const chosen = candidates.find((c) => c.id === state.candidate) || candidates[0];
    const nextId = t + 1 < a.ids.length ? a.ids[t + 1] : null;
    $("attribution-candidates").replaceChildren(el("span", { text: "explain the logit of:" }),
      ...candidates.map((c) => el("button", {
        type: "button", class: "candidate", "aria-pressed": String(c.id === chosen.id), "data-id": c.id,
        "data-focus-key": "candidate-" + c.id,
        onclick: () => select({ candidate: c.id }),
      }, label(c.id), c.id === predicted ? el("small", { text: " (predicted)" }) : null,
         c.id === nextId ? el("small", { text: " (next in input)" }) : null)));

    let names = a.components;
    let values = chosen.values;
    if (state.dlaMode === "blocks") {  // sum each block's heads and bias into one bar
      const totals = new Map();
      names.forEach((name, i) => {
        const parts = name.split(".");
        const key = parts.length > 2 ? parts[0] + "." + parts[1] :
                    (name === "embed" || name === "pos_embed") ? "embeddings" : name;
        totals.set(key, (totals.get(key) || 0) + values[i]);
      });
      names = [...totals.keys()];
      values = [...totals.values()];
    }
    const biggest = Math.max(1e-9, ...values.map(Math.abs));
    const items = [];
    names.forEach((name, i) => {
      const v = values[i];
      const block = name.match(/^(\d+)\.attn\.h(\d+)$/);
      const text = (v >= 0 ? "+" : "\u2212") + Math.abs(v).toFixed(2);
      const nameNode = block
        ? el("button", { type: "button", title: "show this head's attention", "data-focus-key": "bar-" + name,
                         onclick: () => select({ head: [Number(block[1]), Number(block[2])], layer: Number(block[1]) + 1 }),
                         text: name })
        : el("span", { text: name });
      if (i > 0 && /^\d+\.attn\.h0$|^0\.attn$/.test(name)) items.push(el("div", { class: "dla-sep" }));
      items.push(el("div", { class: "dla-label" }, nameNode),
        el("div", { class: "dla-track", role: "img", "aria-label": name + ": " + text },
          el("div", { class: "dla-bar " + (v >= 0 ? "plus" : "minus"),
                      style: { width: (50 * Math.abs(v) / biggest).toFixed(2) + "%" } })),
        el("div", { class: "dla-value", "data-name": name, text: text }));
    });
    $("attribution-bars").replaceChildren(...items);
    const sum = chosen.values.reduce((x, y) => x + y, 0);
    $("attribution-title").textContent = "the logit of " + quoted(chosen.id) + " after " + quoted(a.ids[t]) +
      " (position " + t + "): " + chosen.logit.toFixed(2) + " = the sum of the bars (" + sum.toFixed(2) +
      "). Blue pushes it up, orange (striped) down.";
  }

  // --- embeddings --------------------------------------------------------------------------
  const vocab = DATA.vocab;
  const mapIndex = new Map(vocab.ids.map((id, i) => [id, i]));
  let hotToken = null;  // token whose neighbours are shown

  function renderEmbeddings() {
    const [e1, e2] = vocab.explained;
    $("embedding-explain").textContent = "The token embeddings projected on their top two " +
      "principal components (the lessons' PCA: " + Math.round(100 * e1) + "% and " + Math.round(100 * e2) +
      "% of the variance). Hover or focus a token for its nearest neighbours by cosine similarity " +
      "in all " + DATA.model.d_model + " dimensions." +
      (vocab.ids.length < vocab.total ? " Showing " + vocab.ids.length + " of " + vocab.total + " tokens." : "");
    const W = 640, Hh = 420, pad = 30;
    const xs = vocab.xy.map((p) => p[0]), ys = vocab.xy.map((p) => p[1]);
    const [x0, x1] = [Math.min(...xs), Math.max(...xs)], [y0, y1] = [Math.min(...ys), Math.max(...ys)];
    const sx = (x) => pad + (W - 2 * pad) * (x1 > x0 ? (x - x0) / (x1 - x0) : 0.5);
    const sy = (y) => Hh - pad - (Hh - 2 * pad) * (y1 > y0 ? (y - y0) / (y1 - y0) : 0.5);
    const svg = $("embed-map");
    svg.setAttribute("viewBox", "0 0 " + W + " " + Hh);
    const a = current();
    const inInput = new Set(a.ids);
    const selectedId = a.ids[state.position];
    const predicted = a.attribution[state.position][0].id;
    const nodes = [];
    const withLabels = vocab.ids.length <= 400;
    const focusable = vocab.ids.length <= 400;
    const lines = svgEl("g", {});
    nodes.push(lines);
    vocab.ids.forEach((id, i) => {
      const [x, y] = vocab.xy[i];
      const g = svgEl("g", { class: "pt" + (inInput.has(id) ? " in-input" : "") + (id === predicted ? " pred" : "") +
                                   (id === selectedId ? " sel" : "") + (id === hotToken ? " hot" : ""),
                            "data-id": id, transform: "translate(" + sx(x).toFixed(1) + "," + sy(y).toFixed(1) + ")" });
      if (focusable) { g.setAttribute("tabindex", "0"); g.setAttribute("role", "button"); g.setAttribute("aria-label", "token " + label(id)); }
      g.append(svgEl("circle", { r: id === selectedId || id === predicted ? 7 : 5 }));
      if (withLabels) { const tx = svgEl("text", { x: 8, y: 5 }); tx.textContent = label(id); g.append(tx); }
      const tt = svgEl("title", {}); tt.textContent = label(id); g.append(tt);
      g.addEventListener("mouseenter", () => showNeighbours(id));
      g.addEventListener("focus", () => showNeighbours(id));
      nodes.push(g);
    });
    const ax1 = svgEl("text", { x: W / 2, y: Hh - 6, "text-anchor": "middle", class: "axis" });
    ax1.textContent = "principal component 1";
    const ax2 = svgEl("text", { x: 12, y: Hh / 2, "text-anchor": "middle", class: "axis", transform: "rotate(-90 12 " + Hh / 2 + ")" });
    ax2.textContent = "principal component 2";
    nodes.push(ax1, ax2);
    svg.replaceChildren(...nodes);
    svg.__scale = { sx, sy };
    showNeighbours(hotToken === null ? selectedId : hotToken, false);
  }

  function showNeighbours(id, redrawLabels = true) {
    const i = mapIndex.get(id);
    const panel = $("embed-neighbours");
    const svg = $("embed-map");
    const lines = svg.firstChild;
    if (lines) lines.replaceChildren();
    if (i === undefined) {
      panel.textContent = quoted(id) + " is not on the map.";
      return;
    }
    hotToken = id;
    if (redrawLabels) {
      svg.querySelectorAll(".pt.hot").forEach((g) => g.classList.remove("hot"));
      const g = svg.querySelector('.pt[data-id="' + id + '"]');
      if (g) g.classList.add("hot");
    }
    const { sx, sy } = svg.__scale;
    const [x, y] = vocab.xy[i];
    vocab.neighbours[i].forEach((nb) => {
      const j = mapIndex.get(nb);
      if (j === undefined) return;
      const [u, v] = vocab.xy[j];
      lines.append(svgEl("line", { class: "nb", x1: sx(x), y1: sy(y), x2: sx(u), y2: sy(v) }));
    });
    panel.replaceChildren(el("strong", { text: "nearest to " + quoted(id) + ": " }),
      ...vocab.neighbours[i].map((nb, k) => el("span", { class: "neighbour", "data-id": nb },
        el("span", { class: "tok", text: label(nb) }), " " + vocab.neighbour_cos[i][k].toFixed(2) +
        (k + 1 < vocab.neighbours[i].length ? ",  " : ""))),
      el("span", { class: "hint", text: " (cosine similarity)" }));
  }

  function embeddingSearch() {
    const box = $("embed-search");
    box.addEventListener("input", () => {
      const want = box.value.replace(/ /g, "\u2423");
      if (!want) return;
      for (const id of vocab.ids) {
        if (label(id) === want || String(id) === box.value) { showNeighbours(id); return; }
      }
      $("embed-neighbours").textContent = "no token on the map reads " + want;
    });
  }

  // --- typing a new input (minitf explore --serve) ----------------------------------------
  function serveForm() {
    if (!DATA.serve) {
      $("static-hint").textContent = DATA.hint || "";
      document.body.classList.add("static");
      return;
    }
    const form = $("input-form");
    form.hidden = false;
    const message = $("input-message");
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const text = $("input-text").value;
      message.className = "message busy";
      message.textContent = "running the model\u2026";
      $("input-run").disabled = true;
      try {
        const response = await fetch("api/analyze", {
          method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ text: text }),
        });
        const reply = await response.json();
        if (!response.ok || reply.error) {
          message.className = "message";
          message.textContent = reply.error || ("the server answered " + response.status);
          return;
        }
        addLabels(reply.tokens);
        DATA.inputs.push(reply);
        message.textContent = "";
        chooseInput(DATA.inputs.length - 1);
      } catch (err) {
        message.className = "message";
        message.textContent = "could not reach the minitf server (" + err.message + "); is it still running?";
      } finally {
        $("input-run").disabled = false;
      }
    });
  }

  // --- wiring ------------------------------------------------------------------------------
  function render() {
    renderInputs();
    renderLens();
    renderAttention();
    renderAttribution();
    renderEmbeddings();
  }
  function textSize(step) {
    const root = document.documentElement;
    const now = parseFloat(getComputedStyle(root).fontSize);
    root.style.fontSize = Math.max(12, Math.min(32, now + step)) + "px";
  }

  document.title = DATA.title;
  $("title").textContent = DATA.title;
  $("smaller").addEventListener("click", () => textSize(-2));
  $("larger").addEventListener("click", () => textSize(2));
  document.querySelectorAll('input[name="lens"]').forEach((r) =>
    r.addEventListener("change", () => { if (r.checked) select({ lens: r.value }); }));
  document.querySelectorAll('input[name="dla-mode"]').forEach((r) =>
    r.addEventListener("change", () => { if (r.checked) select({ dlaMode: r.value }); }));
  lensEvents();
  embeddingSearch();
  renderColorbar();
  serveForm();
  chooseInput(0);
  document.body.dataset.ready = "true";  // for tests and scripts: the views are drawn
})();
