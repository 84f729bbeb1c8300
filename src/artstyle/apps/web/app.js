// The artstyle page: send each chosen or dropped image to /api/predict, one at a time,
// and show its top-k movements as labelled bars, with marks for unsure answers. A "why?"
// button per card asks /api/explain for the heat-map and /api/similar for the closest
// training paintings, once, and then shows or hides them.
"use strict";

const form = document.getElementById("upload");
const input = document.getElementById("files");
const topK = document.getElementById("top-k");
const results = document.getElementById("results");
const template = document.getElementById("card");
const modelInfo = document.getElementById("model-info");
let model = null;

const percent = (p) => `${(100 * p).toFixed(p < 0.1 ? 1 : 0)} %`;

async function loadModel() {
  try {
    const response = await fetch("api/model");
    model = await response.json();
    const m = model.metrics || {};
    const scores = m.accuracy === undefined ? "" :
      ` Measured on ${m.evaluated_on || "held-out paintings"}: top-1 ${percent(m.accuracy)}, top-3 ${percent(m.top3_accuracy)}.`;
    const backbones = model.backbones.map((b) => b.name).join(" + ");
    modelInfo.textContent = `Model “${model.name}”: ${model.labels.length} movements, ${backbones}, ${model.recipe}.${scores}`;
  } catch (error) {
    modelInfo.textContent = "The model description could not be loaded.";
  }
}

function newCard(file) {
  const card = template.content.firstElementChild.cloneNode(true);
  card.querySelector(".name").textContent = file.name;
  const img = card.querySelector("img");
  const url = URL.createObjectURL(file);
  img.addEventListener("load", () => URL.revokeObjectURL(url));
  img.addEventListener("error", () => { img.classList.add("missing"); URL.revokeObjectURL(url); });
  img.src = url;
  img.alt = `thumbnail of ${file.name}`;
  results.prepend(card);
  return card;
}

function badge(text, kind, title) {
  const span = document.createElement("span");
  span.className = `badge ${kind}`;
  span.textContent = text;
  if (title) span.title = title;
  return span;
}

function showPrediction(card, result) {
  const verdict = card.querySelector(".verdict");
  const [top, topP] = [result.predictions[0].label, result.predictions[0].probability];
  verdict.textContent = result.mixed ? result.mixed.join(" + ") : top;
  if (result.is_painting === false) {
    verdict.textContent = result.not_painting_kind
      ? `probably not a painting: looks like a ${result.not_painting_kind}`
      : "probably not a painting";
    verdict.title = "this image is unlike the paintings the model knows";
  } else {
    // the marks qualify a movement answer: on "not a painting" there is none to qualify
    if (result.uncertain) {
      const threshold = model ? ` below the model's threshold of ${percent(model.uncertain_below)}` : "";
      verdict.append(badge("unsure", "unsure", `top probability ${percent(topP)}${threshold}`));
    }
    if (result.mixed) verdict.append(badge("mixed", "mixed", "the first two movements are nearly equally likely"));
  }
  const bars = card.querySelector(".bars");
  for (const { label, probability } of result.predictions) {
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
  } else {
    const blank = document.createElement("div");
    blank.className = "no-thumb";
    blank.setAttribute("aria-hidden", "true");
    blank.title = "this model keeps no thumbnails (train with --thumbnails)";
    blank.textContent = "no picture";
    item.append(blank);
  }
  const text = document.createElement("p");
  const movement = document.createElement("strong");
  movement.textContent = neighbour.movement;
  text.append(movement, document.createElement("br"), neighbour.artist);
  text.title = `${neighbour.file}: similarity ${neighbour.similarity.toFixed(2)}`;
  item.append(text);
  return item;
}

async function loadExplanation(card, file, movement) {
  const panel = card.querySelector(".explain");
  const overlay = card.querySelector(".overlay img");
  const strip = card.querySelector(".strip");
  const explainBody = new FormData();
  explainBody.append("file", file, file.name);
  if (movement) explainBody.append("movement", movement);
  const similarBody = new FormData();
  similarBody.append("files", file, file.name);
  similarBody.append("k", "5");
  const [heat, similar] = await Promise.allSettled([
    fetch("api/explain", { method: "POST", body: explainBody }),
    fetch("api/similar", { method: "POST", body: similarBody }),
  ]);
  if (heat.status === "fulfilled" && heat.value.ok) {
    overlay.src = URL.createObjectURL(await heat.value.blob());
    overlay.alt = `heat-map of ${movement} over ${file.name}`;
  } else {
    // the server's reason when it gave one (e.g. 501: this install has no PyTorch for heat-maps)
    const detail = heat.status === "fulfilled" ? (await heat.value.json().catch(() => ({}))).detail : null;
    card.querySelector(".overlay figcaption").textContent = detail
      ? `No heat-map: ${detail}` : "The heat-map could not be made.";
    overlay.remove();
  }
  if (similar.status === "fulfilled" && similar.value.ok) {
    const [result] = await similar.value.json();
    for (const neighbour of result.neighbours) strip.append(similarItem(neighbour));
  } else {
    card.querySelector(".similar-title").textContent = "No similar paintings: this model keeps no index.";
  }
  panel.dataset.loaded = "true";
}

function addWhy(card, file, movement) {
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
        await loadExplanation(card, file, movement);
      } finally {
        button.disabled = false;
        button.textContent = "why?";
        button.focus();
      }
    }
  });
}

function showError(card, message) {
  card.classList.add("error");
  card.querySelector(".verdict").textContent = `Cannot read this file: ${message}`;
}

async function classify(file) {
  const card = newCard(file);
  const body = new FormData();
  body.append("files", file, file.name);
  body.append("top_k", topK.value);
  try {
    const response = await fetch("api/predict", { method: "POST", body });
    const data = await response.json();
    if (!response.ok) {
      const result = data.results && data.results[0];
      showError(card, result && result.error ? result.error : data.detail || `HTTP ${response.status}`);
    } else if (data[0].error) {
      showError(card, data[0].error);
    } else {
      showPrediction(card, data[0]);
      addWhy(card, file, data[0].predictions[0].label);
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

loadModel();
