// The review page: a grid of the collection's images with the model's answers, paged and
// filtered on the server; keys accept or correct the focused image, and each decision is
// posted at once (the server rewrites labels.csv atomically).
"use strict";

const PER_PAGE = 60;
const state = { meta: null, page: 0, total: 0, items: [], focus: 0 };
const $ = (id) => document.getElementById(id);
const percent = (p) => `${(100 * p).toFixed(p < 0.1 ? 1 : 0)} %`;

async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || response.statusText);
  return body;
}

function filters() {
  return new URLSearchParams({
    movement: $("f-movement").value, family: $("f-family").value, flag: $("f-flag").value,
    status: $("f-status").value, sort: $("f-sort").value, offset: state.page * PER_PAGE, limit: PER_PAGE,
  });
}

function decisionText(decision) {
  if (!decision) return "";
  return decision.decided_by === "person" ? `corrected: ${decision.movement}` : `accepted: ${decision.movement}`;
}

function tile(item, position) {
  const li = document.createElement("li");
  li.className = "tile" + (item.decision ? " decided" : "");
  li.tabIndex = position === state.focus ? 0 : -1;
  li.dataset.index = item.index;
  li.dataset.position = position;
  li.setAttribute("aria-label", `${item.name}: ${item.summary}`);
  const img = document.createElement("img");
  img.src = `api/review/thumbnail/${item.index}`;
  img.alt = "";
  img.loading = "lazy";
  const name = document.createElement("p");
  name.textContent = item.name;
  const answer = document.createElement("p");
  answer.className = "answer";
  const plain = !item.family_first && item.probability != null && !item.flags.includes("not a painting");
  answer.textContent = plain ? `${item.summary}, ${percent(item.probability)}` : item.summary;
  const flags = document.createElement("p");
  flags.className = "flags";
  flags.textContent = item.flags.join(", ");
  const decision = document.createElement("p");
  decision.className = "decision";
  decision.textContent = decisionText(item.decision);
  li.append(img, answer, name, flags, decision);
  li.addEventListener("click", () => focusTile(position));
  li.addEventListener("dblclick", () => openDetail());
  return li;
}

function render() {
  const grid = $("grid");
  grid.replaceChildren(...state.items.map(tile));
  const pages = Math.max(1, Math.ceil(state.total / PER_PAGE));
  $("page").textContent = `page ${state.page + 1} of ${pages} (${state.total} images)`;
  $("prev").disabled = state.page === 0;
  $("next").disabled = state.page + 1 >= pages;
}

function showStatus(result) {
  const meta = state.meta;
  $("status").textContent = `${result.decided} of ${result.images} images decided, saved to ${meta.labels_file}; `
    + `model ${meta.model}.`;
}

async function load(keepFocus = false) {
  const result = await api(`api/review/items?${filters()}`);
  state.total = result.total;
  state.items = result.items;
  if (!keepFocus) state.focus = 0;
  state.focus = Math.min(state.focus, Math.max(0, state.items.length - 1));
  render();
  showStatus(result);
  focusTile(state.focus);
}

function focusTile(position) {
  const tiles = $("grid").children;
  if (!tiles.length) return;
  state.focus = Math.max(0, Math.min(position, tiles.length - 1));
  for (const t of tiles) t.tabIndex = -1;
  tiles[state.focus].tabIndex = 0;
  tiles[state.focus].focus();
}

function current() { return state.items[state.focus]; }

async function decide(movement) {
  const item = current();
  if (!item) return;
  try {
    const row = await api("api/review/decisions", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(movement === undefined ? { index: item.index } : { index: item.index, movement }),
    });
    item.decision = row;
  } catch (error) {
    $("status").textContent = `not saved: ${error.message}`;
    return;
  }
  const next = state.focus + 1;
  await load(true);
  focusTile(Math.min(next, state.items.length - 1));
}

async function undo() {
  const item = current();
  if (!item) return;
  await api(`api/review/decisions/${item.index}`, { method: "DELETE" });
  await load(true);
}

function openChooser() {
  const item = current();
  if (!item) return;
  $("chooser-name").textContent = item.name;
  $("chooser").hidden = false;
  const input = $("chooser-input");
  input.value = "";
  $("chooser-match").textContent = "";
  input.focus();
}

function match(text) {
  const options = [...state.meta.movements, state.meta.not_a_painting];
  const typed = text.trim().toLowerCase();
  if (!typed) return null;
  return options.find((m) => m === typed) || options.find((m) => m.startsWith(typed))
    || options.find((m) => m.includes(typed)) || null;
}

function closeChooser() {
  $("chooser").hidden = true;
  focusTile(state.focus);
}

async function openDetail() {
  const item = current();
  if (!item) return;
  $("detail-image").src = `api/review/image/${item.index}`;
  $("detail-image").alt = item.name;
  $("detail-name").textContent = item.name;
  $("detail-summary").textContent = item.summary;
  $("detail-top").replaceChildren(...item.predictions.map((p) => {
    const li = document.createElement("li");
    li.textContent = `${p.label} ${percent(p.probability)}`;
    return li;
  }));
  $("detail-decision").textContent = decisionText(item.decision);
  $("detail-neighbours").replaceChildren();
  $("detail").showModal();
}

async function imageBlob(item) {
  const response = await fetch(`api/review/image/${item.index}`);
  return response.blob();
}

async function heatmap() {
  const item = current();
  const form = new FormData();
  form.append("file", await imageBlob(item), `${item.index}.jpg`);
  const response = await fetch("api/explain", { method: "POST", body: form });
  if (!response.ok) {
    $("detail-decision").textContent = `no heat-map: ${(await response.json()).detail}`;
    return;
  }
  $("detail-image").src = URL.createObjectURL(await response.blob());
}

async function similar() {
  const item = current();
  const form = new FormData();
  form.append("files", await imageBlob(item), `${item.index}.jpg`);
  const response = await fetch("api/similar", { method: "POST", body: form });
  const body = await response.json();
  if (!response.ok) {
    $("detail-decision").textContent = `no closest paintings: ${body.detail}`;
    return;
  }
  $("detail-neighbours").replaceChildren(...(body[0].neighbours || []).map((n) => {
    const li = document.createElement("li");
    if (n.thumbnail) {
      const img = document.createElement("img");
      img.src = n.thumbnail;
      img.alt = `${n.file} (${n.movement})`;
      li.append(img);
    }
    li.append(`${n.movement}, ${n.artist_name} (${n.similarity.toFixed(2)})`);
    return li;
  }));
}

const COLUMNS = () => Math.max(1, Math.round($("grid").clientWidth / ($("grid").children[0]?.offsetWidth || 1)));

document.addEventListener("keydown", async (event) => {
  if (!$("chooser").hidden) {
    if (event.key === "Escape") closeChooser();
    if (event.key === "Enter") {
      event.preventDefault();
      const movement = match($("chooser-input").value);
      if (!movement) { $("chooser-match").textContent = "no such movement"; return; }
      $("chooser").hidden = true;
      await decide(movement);
    }
    return;
  }
  if ($("detail").open || event.target.tagName === "SELECT") return;
  const moves = { ArrowRight: 1, j: 1, ArrowLeft: -1, k: -1, ArrowDown: COLUMNS(), ArrowUp: -COLUMNS() };
  if (event.key in moves) { event.preventDefault(); focusTile(state.focus + moves[event.key]); return; }
  const actions = {
    a: () => decide(), Enter: () => decide(), c: openChooser, n: () => decide(state.meta.not_a_painting),
    u: undo, o: openDetail, " ": openDetail,
    PageDown: () => turn(1), PageUp: () => turn(-1),
  };
  if (event.key in actions) { event.preventDefault(); await actions[event.key](); }
});

$("chooser-input").addEventListener("input", (event) => {
  const movement = match(event.target.value);
  $("chooser-match").textContent = movement ? `Enter: ${movement}` : "no such movement";
});

async function turn(step) {
  const pages = Math.max(1, Math.ceil(state.total / PER_PAGE));
  const page = Math.max(0, Math.min(pages - 1, state.page + step));
  if (page !== state.page) { state.page = page; await load(); }
}

$("prev").addEventListener("click", () => turn(-1));
$("next").addEventListener("click", () => turn(1));
$("detail-close").addEventListener("click", () => { $("detail").close(); focusTile(state.focus); });
$("detail-heatmap").addEventListener("click", heatmap);
$("detail-similar").addEventListener("click", similar);
$("filters").addEventListener("change", () => { state.page = 0; load(); });

async function start() {
  state.meta = await api("api/review/meta");
  for (const m of state.meta.movements) $("f-movement").append(new Option(m, m));
  for (const f of state.meta.families) $("f-family").append(new Option(f, f));
  $("chooser-list").replaceChildren(...[...state.meta.movements, state.meta.not_a_painting].map((m) => new Option(m, m)));
  await load();
}

start();
