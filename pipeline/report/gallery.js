// The report's gallery: cards from data.js (window.NERVE_REPORT), worst first, filtered by class and
// score range, shown one page at a time; thumbnails load lazily. No network, no libraries.
(function () {
  "use strict";
  const R = window.NERVE_REPORT;
  // field name -> index in a card's row: the order is data.js's card_columns (pipeline/report/gallery.py)
  const CARD = Object.fromEntries(R.card_columns.map((name, i) => [name, i]));
  const state = {cls: -1, lo: null, hi: null, page: 0};
  const $ = (id) => document.getElementById(id);

  function number(text) {
    const v = parseFloat(text);
    return Number.isFinite(v) ? v : null;
  }

  function fmt(v, digits) {
    return v === null || v === undefined ? "n/a" : v.toFixed(digits);
  }

  function shown() {
    return R.cards.filter((c) =>
      (state.cls < 0 || c[CARD.classes].includes(state.cls)) &&
      (state.lo === null || (c[CARD.score] !== null && c[CARD.score] >= state.lo)) &&
      (state.hi === null || (c[CARD.score] !== null && c[CARD.score] <= state.hi)));
  }

  function swatch(classId) {
    const [name, colour] = R.classes[classId] || ["class " + classId, "#999999"];
    const span = document.createElement("span");
    span.className = "cls";
    const box = document.createElement("i");
    box.style.background = colour;
    span.append(box, name);
    return span;
  }

  function card(c) {
    const fig = document.createElement("figure");
    fig.className = "card";
    fig.dataset.classes = " " + c[CARD.classes].join(" ") + " ";
    fig.dataset.key = c[CARD.key];
    if (c[CARD.thumb]) {
      const img = document.createElement("img");
      img.loading = "lazy";
      img.decoding = "async";
      img.src = "thumbs/" + c[CARD.thumb];
      img.alt = c[CARD.key];
      fig.append(img);
    }
    const cap = document.createElement("figcaption");
    const key = document.createElement("div");
    key.className = "key";
    key.textContent = c[CARD.key] + (c[CARD.occurrence] ? " #" + c[CARD.occurrence] : "");
    key.title = R.shards[c[CARD.shard]] + " / " + c[CARD.key];
    const score = document.createElement("div");
    score.className = "score";
    const parts = [];
    if (c[CARD.miou] !== null) parts.push("mIoU " + fmt(c[CARD.miou], 1), "acc " + fmt(c[CARD.accuracy], 1));
    if (c[CARD.confidence] !== null) parts.push("conf " + fmt(100 * c[CARD.confidence], 1));
    score.textContent = parts.length ? parts.join(" · ") : "no score";
    const classes = document.createElement("div");
    classes.className = "classes";
    classes.append(...c[CARD.classes].map(swatch));
    cap.append(key, score, classes);
    if (c[CARD.note]) {
      const note = document.createElement("div");
      note.className = "note";
      note.textContent = c[CARD.note];
      cap.append(note);
    }
    fig.append(cap);
    return fig;
  }

  function render() {
    const list = shown();
    const pages = Math.max(1, Math.ceil(list.length / R.page_size));
    state.page = Math.min(state.page, pages - 1);
    const start = state.page * R.page_size;
    $("cards").replaceChildren(...list.slice(start, start + R.page_size).map(card));
    $("page-info").textContent = "page " + (state.page + 1) + " of " + pages + " (" + list.length + " of " +
      R.cards.length + " images)";
    $("prev").disabled = state.page === 0;
    $("next").disabled = state.page >= pages - 1;
  }

  function setup() {
    const select = $("class-filter");
    R.classes.forEach(([name], i) => {
      const option = document.createElement("option");
      option.value = String(i);
      option.textContent = name;
      select.append(option);
    });
    select.addEventListener("change", () => { state.cls = parseInt(select.value, 10); state.page = 0; render(); });
    for (const [id, field] of [["score-min", "lo"], ["score-max", "hi"]]) {
      $(id).addEventListener("input", (e) => { state[field] = number(e.target.value); state.page = 0; render(); });
    }
    $("prev").addEventListener("click", () => { state.page -= 1; render(); window.scrollTo(0, $("gallery").offsetTop); });
    $("next").addEventListener("click", () => { state.page += 1; render(); window.scrollTo(0, $("gallery").offsetTop); });
    render();
  }

  setup();
})();
