// The artstyle page: send each chosen or dropped image to /api/predict, one at a time, in
// the order given, and show its movements as labelled bars, with the marks for unsure and
// mixed answers said in words. A "why?" button per card explains the answer: for a
// painting, the heat-map of a movement (the predicted one, or another picked) beside the
// painting and the closest training paintings; for an image the detector calls "not a
// painting", that verdict, in words.
"use strict";

const form = document.getElementById("upload");
const input = document.getElementById("files");
const topK = document.getElementById("top-k");
const results = document.getElementById("results");
const template = document.getElementById("card");
const modelInfo = document.getElementById("model-info");
const legend = document.getElementById("legend");
let model = null;
const modelReady = loadModel();
const answered = []; // [card, result]: redrawn when "movements per image" changes

const percent = (p) => `${(100 * p).toFixed(p < 0.1 ? 1 : 0)} %`;

const BAND_NAMES = { "all": "all paintings", "full size": "full-size scans", "small (short side <= 256 px)": "small web copies" };
const withInterval = (s) => `${percent(s.share)} (95 % interval ${percent(s.interval[0])}–${percent(s.interval[1])})`;

// the model's measured figures, each with its sample and interval, per size band where it has several
function scoreLines() {
  const scores = model.scores || [];
  const shown = scores.length > 1 ? scores.slice(1) : scores;
  return shown.map((s) => `${BAND_NAMES[s.name] || s.name}: top-1 ${withInterval(s.accuracy)}, top-3 ${withInterval(s.top3_accuracy)}, n = ${s.n_images.toLocaleString("en")}`);
}

async function loadModel() {
  try {
    const response = await fetch("api/model");
    model = await response.json();
    const backbones = model.backbones.map((b) => b.name).join(" + ");
    modelInfo.textContent = `Model “${model.name}”: ${model.labels.length} movements, ${backbones}, ${model.recipe}.`;
    const lines = scoreLines();
    if (lines.length) {
      const how = (model.metrics || {}).evaluated_on;
      modelInfo.append(` Measured on paintings it did not train on${how ? `, by ${how === "test split" ? "a held-out test split" : how}` : ""}:`);
      const list = document.createElement("ul");
      for (const line of lines) {
        const item = document.createElement("li");
        item.textContent = line;
        list.append(item);
      }
      modelInfo.append(list);
    } else {
      modelInfo.append(" No held-out figures: it was not tested on paintings it did not train on.");
    }
    showLegend();
  } catch (error) {
    modelInfo.textContent = "The model description could not be loaded.";
  }
}

function term(name, text) {
  const dt = document.createElement("dt");
  dt.textContent = name;
  const dd = document.createElement("dd");
  dd.textContent = text;
  legend.append(dt, dd);
}

// how the thresholds were set: fitted on enough held-out answers, or the documented defaults
function basisText() {
  const b = model.flags_basis || {};
  return b.basis === "held-out"
    ? ` (threshold fitted on ${b.fitted_on.toLocaleString("en")} answers on paintings by artists the model never saw)`
    : ` (the default threshold: ${b.fitted_on || "no"} held-out answers were too few to fit one)`;
}

// what the marks mean, in words a visitor reads without hovering, with the model's own figures
function showLegend() {
  const held = model.held_out;
  const record = held && held.sure_share != null && held.accuracy_when_sure != null && (model.flags_basis || {}).basis === "held-out"
    ? ` On ${held.n_images.toLocaleString("en")} paintings by artists it never saw, the model was sure of ${percent(held.sure_share)}, and right on ${percent(held.accuracy_when_sure)} of those.`
    : "";
  term("unsure", model.uncertain_below > 0
    ? `The first movement has less than ${percent(model.uncertain_below)} probability${basisText()}: take it as a guess.${record}`
    : "This model marks no answer unsure.");
  if (model.mixed_within) {
    term("mixed", `The first two movements are within ${(100 * model.mixed_within).toFixed(0)} points of each other${basisText()}: the painting may belong to both.`);
  }
  term("training painting", "The image is one of the paintings the model learnt from (the same file or the same picture): its answer is memory, not a measure of skill.");
  const detector = model.painting_detector;
  if (detector && detector.non_paintings_flagged != null) {
    const of = (n) => (n ? ` of ${n.toLocaleString("en")}` : "");
    term("not a painting", `The image looks unlike the paintings the model learnt (held out, it flagged ${percent(detector.non_paintings_flagged)}${of(detector.non_paintings)} photos, charts and documents, and ${percent(detector.paintings_flagged)}${of(detector.paintings)} paintings).`);
  }
  legend.hidden = false;
}

function newCard(file) {
  const card = template.content.firstElementChild.cloneNode(true);
  card.querySelector(".name").textContent = file.name;
  const img = card.querySelector(".thumb img");
  const url = URL.createObjectURL(file);
  img.addEventListener("error", () => img.closest(".thumb").remove());
  img.src = url;
  img.alt = `thumbnail of ${file.name}`;
  card.dataset.url = url; // kept for the heat-map's side-by-side view
  results.append(card); // in the order the files were given
  return card;
}

function badge(text, kind) {
  const span = document.createElement("span");
  span.className = `badge ${kind}`;
  span.textContent = text;
  return span;
}

function notPainting(result) {
  return result.is_painting === false;
}

function showMemory(card, result) {
  if (!result.in_training) return;
  card.querySelector(".verdict").append(badge("training painting", "memorised"));
  const note = card.querySelector(".memory-note");
  note.textContent = `This painting is in the model's training set (as ${result.training_movement}): the answer below is memory, not a measure of skill.`;
  note.hidden = false;
}

function showVerdict(card, result) {
  const verdict = card.querySelector(".verdict");
  const note = card.querySelector(".flag-note");
  const [top, topP] = [result.predictions[0].label, result.predictions[0].probability];
  if (notPainting(result)) {
    verdict.textContent = result.not_painting_kind
      ? `probably not a painting: looks like a ${result.not_painting_kind}`
      : "probably not a painting";
    card.classList.add("not-painting");
    const title = card.querySelector(".bars-title");
    title.textContent = "If it were a painting, the closest movements would be:";
    title.hidden = false;
    showMemory(card, result);
    return;
  }
  const family = result.family;
  const notes = [];
  if (result.family_first) {
    // The movement is unsure but its family is sure: the family is the answer to file.
    verdict.textContent = `${family.name}, ${percent(family.probability)}`;
    notes.push(`most likely ${family.movement}, ${percent(family.movement_probability)}; ${family.name} sums its movements`);
  } else {
    verdict.textContent = result.mixed ? result.mixed.join(" + ") : top;
    if (family) notes.push(`family: ${family.name}, ${percent(family.probability)}`);
  }
  if (result.uncertain && !result.family_first) {
    verdict.append(badge("unsure", "unsure"));
    const threshold = model ? ` is below the model's threshold of ${percent(model.uncertain_below)}` : " is low";
    notes.push(`unsure: ${percent(topP)}${threshold}`);
  }
  if (result.mixed && !result.family_first) {
    verdict.append(badge("mixed", "mixed"));
    const second = result.predictions[1];
    const margin = model ? `, within the model's ${(100 * model.mixed_within).toFixed(0)} points` : "";
    notes.push(`mixed: ${percent(topP)} and ${percent(second.probability)}${margin}`);
  }
  note.textContent = notes.join("; ");
  note.hidden = notes.length === 0;
  showMemory(card, result);
}

function drawBars(card, result) {
  const bars = card.querySelector(".bars");
  bars.replaceChildren();
  for (const { label, probability } of result.predictions.slice(0, Number(topK.value))) {
    const row = document.createElement("li");
    row.className = "bar-row";
    const name = document.createElement("span");
    name.className = "bar-label";
    name.textContent = label;
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.setAttribute("role", "meter");
    bar.setAttribute("aria-label", label);
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "100");
    bar.setAttribute("aria-valuenow", (100 * probability).toFixed(1));
    bar.setAttribute("aria-valuetext", percent(probability));
    const fill = document.createElement("div");
    fill.className = "bar-fill";
    fill.style.width = `${(100 * probability).toFixed(1)}%`;
    bar.append(fill);
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = percent(probability);
    row.append(name, bar, value);
    bars.append(row);
  }
}

function similarItem(neighbour) {
  const item = document.createElement("li");
  item.className = "neighbour";
  if (neighbour.thumbnail) {
    const img = document.createElement("img");
    img.src = neighbour.thumbnail;
    img.alt = `${neighbour.file} (${neighbour.movement})`;
    img.loading = "lazy";
    item.append(img);
  }
  const text = document.createElement("p");
  const movement = document.createElement("strong");
  movement.textContent = neighbour.movement;
  const similarity = document.createElement("span");
  similarity.className = "similarity";
  similarity.textContent = `${percent(Math.max(0, neighbour.similarity))} similar`;
  text.append(movement, document.createElement("br"), neighbour.artist_name, document.createElement("br"), similarity);
  text.title = neighbour.file;
  item.append(text);
  return item;
}

async function loadHeatMap(card, file, movement, result) {
  const overlay = card.querySelector(".overlay img");
  const caption = card.querySelector(".overlay figcaption");
  const body = new FormData();
  body.append("file", file, file.name);
  body.append("movement", movement);
  caption.textContent = `Working out where it saw ${movement}… (the first map of a session takes a few seconds)`;
  card.querySelector(".heat").hidden = false; // the painting shows at once, the map beside it when ready
  overlay.classList.add("working");
  const response = await fetch("api/explain", { method: "POST", body }).catch(() => null);
  overlay.classList.remove("working");
  if (response && response.ok) {
    // the bar's own number: one answer, one figure, whichever engine drew the map
    const probability = result.predictions.find((p) => p.label === movement).probability;
    if (overlay.src.startsWith("blob:")) URL.revokeObjectURL(overlay.src);
    overlay.src = URL.createObjectURL(await response.blob());
    overlay.alt = `heat-map of ${movement} over ${file.name}`;
    caption.textContent = `Where the model saw ${movement} (${percent(probability)}): the brighter, the more it counted. Brightness is relative: each map is scaled to its own maximum, so compare regions of one map, not maps of two movements.`;
    return true;
  }
  // the server's reason when it gave one (e.g. 501: this install has no PyTorch for heat-maps)
  const detail = response ? (await response.json().catch(() => ({}))).detail : null;
  const reason = card.querySelector(".reason");
  reason.textContent = detail ? `No heat-map: ${detail}` : "The heat-map could not be made.";
  reason.hidden = false;
  card.querySelector(".heat").hidden = true;
  return false;
}

async function loadSimilar(card, file) {
  const strip = card.querySelector(".strip");
  const note = card.querySelector(".similar-note");
  const body = new FormData();
  body.append("files", file, file.name);
  body.append("k", "5");
  const response = await fetch("api/similar", { method: "POST", body }).catch(() => null);
  if (!response || !response.ok) {
    card.querySelector(".similar-title").textContent = "No similar paintings: this model keeps no index.";
    return;
  }
  const [result] = await response.json();
  const notes = [];
  if (result.in_training) {
    notes.push(`This painting is in the model's training set (${result.in_training.file}, ${result.in_training.movement}); these are the closest others.`);
  }
  if (model && model.similar && !model.similar.thumbnails) {
    notes.push("This model keeps no pictures of its training paintings (the model that ships with artstyle leaves them out: their licences allow no copies), so they are named only.");
  }
  note.textContent = notes.join(" ");
  note.hidden = notes.length === 0;
  for (const neighbour of result.neighbours) strip.append(similarItem(neighbour));
}

function fillMovements(card, chosen) {
  const select = card.querySelector(".movement");
  for (const label of model ? model.labels : [chosen]) {
    const option = document.createElement("option");
    option.textContent = label;
    option.selected = label === chosen;
    select.append(option);
  }
}

async function loadExplanation(card, file, result) {
  if (notPainting(result)) {
    const reason = card.querySelector(".reason");
    const kind = result.not_painting_kind ? `, closest to a ${result.not_painting_kind}` : "";
    reason.textContent = `The painting detector judges this image unlike the paintings the model learnt from${kind}. ` +
      "Movement heat-maps explain paintings only: upload a painting to see where the model finds its movement.";
    reason.hidden = false;
    card.querySelector(".similar-title").hidden = true;
    card.querySelector(".strip").hidden = true;
    return;
  }
  const movement = result.predictions[0].label;
  fillMovements(card, movement);
  card.querySelector(".original img").src = card.dataset.url;
  card.querySelector(".original img").alt = file.name;
  const select = card.querySelector(".movement");
  select.addEventListener("change", async () => {
    select.disabled = true;
    try {
      await loadHeatMap(card, file, select.value, result);
    } finally {
      select.disabled = false;
    }
  });
  await Promise.allSettled([loadHeatMap(card, file, movement, result), loadSimilar(card, file)]);
}

function addWhy(card, file, result) {
  const button = card.querySelector(".why");
  const panel = card.querySelector(".explain");
  button.hidden = false;
  button.addEventListener("click", async () => {
    const open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", String(open));
    panel.hidden = !open;
    if (open && !panel.dataset.loaded && !panel.dataset.loading) {
      panel.dataset.loading = "true";
      button.disabled = true;
      button.textContent = "why? (working…)";
      try {
        await loadExplanation(card, file, result);
        panel.dataset.loaded = "true";
      } finally {
        delete panel.dataset.loading;
        button.disabled = false;
        button.textContent = "why?";
        button.focus();
      }
    }
  });
}

function showError(card, message) {
  card.classList.add("error");
  card.querySelector(".thumb")?.remove(); // no empty picture box for a file that is not a picture
  card.querySelector(".verdict").textContent = `Cannot read this file: ${message}`;
}

async function classify(file) {
  const card = newCard(file);
  await modelReady;
  const body = new FormData();
  body.append("files", file, file.name);
  // every movement's probability: "movements per image" then redraws without asking again
  body.append("top_k", String(model ? model.labels.length : 5));
  try {
    const response = await fetch("api/predict", { method: "POST", body });
    const data = await response.json();
    if (!response.ok) {
      const result = data.results && data.results[0];
      showError(card, result && result.error ? result.error : data.detail || `HTTP ${response.status}`);
    } else if (data[0].error) {
      showError(card, data[0].error);
    } else {
      showVerdict(card, data[0]);
      drawBars(card, data[0]);
      answered.push([card, data[0]]);
      addWhy(card, file, data[0]);
    }
  } catch (error) {
    showError(card, `the server did not answer (${error.message})`);
  }
}

async function classifyAll(files) {
  for (const file of files) await classify(file);
}

input.addEventListener("change", () => {
  const files = Array.from(input.files);
  input.value = "";
  classifyAll(files);
});
topK.addEventListener("change", () => {
  for (const [card, result] of answered) drawBars(card, result);
});
form.addEventListener("submit", (event) => event.preventDefault());
for (const type of ["dragenter", "dragover"]) {
  form.addEventListener(type, (event) => { event.preventDefault(); form.classList.add("dragging"); });
}
for (const type of ["dragleave", "drop"]) {
  form.addEventListener(type, () => form.classList.remove("dragging"));
}
form.addEventListener("drop", (event) => {
  event.preventDefault();
  classifyAll(Array.from(event.dataTransfer.files));
});
