"""StyleClassifier: the scikit-learn-style estimator that ties the pipeline together.

    scan (dataset) -> split (splits) -> features (recipe x backbones)
        -> head chosen and calibrated on artist-disjoint folds (training) -> bundle

    >>> clf = StyleClassifier(backbone="efficientnet_lite0").fit("paintings/")
    >>> clf.predict(["mystery.jpg"])
    ['impressionism']
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from ..data.dataset import Dataset, Roots, file_sha256, labelled_images
from ..data.images import ImageInput, source_name
from ..data.sizes import size_profile, size_warning
from ..data.splits import SPLIT_MODES, make_split, parse_splits_csv, splits_csv
from ..errors import ArtstyleError, BundleError, ImageLoadError, NotFittedError, require_torch
from ..features.backbones import load_backbone
from ..features.cache import FeatureCache, default_cache_dir
from ..features.extraction import DEFAULT_BATCH_SIZE, Extraction, FeatureExtractor, extract_features
from ..features.graph_cache import BundledGraph
from ..features.preprocess import Preprocessing
from ..features.recipes import DEFAULT_BACKBONE, DEFAULT_RECIPE, get_recipe, split_backbones
from ..features.size_variants import SizeVariants
from ..timing import stage
from .balancing import DEFAULT_BALANCING, check_balancing
from .bundle import (
    Bundle,
    load_bundle,
    save_bundle,
)
from .detector_data import detector_training_data
from .evaluation import Evaluation, evaluate_classifier, fit_metrics, skipped_report
from .folder import adopt_bundle, backbone_records, fitted_config, weights_to_run
from .head import HEAD_KINDS
from .negatives import (
    FolderNonPaintings,
    folder_non_paintings,
)
from .painting import NonPaintings
from .prediction import Prediction, family_fields
from .similar import SimilarPaintings, training_index, training_movements
from .size_bands import fit_size_bands, tile_columns
from .tuning import fine_tune

if TYPE_CHECKING:
    from ..features.finetune_recipe import FineTuning
    from .explain import Explanation
    from .training import TrainedHead

log = logging.getLogger("artstyle")

DEFAULT_NEGATIVES = 120  # generated non-paintings the painting detector learns from


def _as_list(images) -> list:
    """One image (path or PIL image) or a sequence of them, as a list."""
    if isinstance(images, (str, os.PathLike)) or not isinstance(images, Sequence):
        return [images]
    return list(images)


class StyleClassifier:
    """Art-movement classifier on a pretrained network's features (frozen, or fine-tuned first).

    `split` "auto" holds out whole artists when the tree has artist folders, else images.
    Parameters follow scikit-learn conventions: they are stored as given and checked
    in `fit`. Fitted state ends in an underscore (`classes_`, `head_`).
    `backbone` may join several names with '+' (their features are concatenated);
    `features` names a recipe (see `recipes.RECIPES`); `head` is "auto" (chosen by
    cross-validation) or one of `HEAD_KINDS`.
    `negatives` generated non-paintings teach the painting detector beside the real ones that
    ship for the backbone (0: no detector).
    `cache_dir=None` uses the user cache folder; `cache_dir=False` caches nothing.
    `engine` runs the network on "torch", "onnx" (ONNX Runtime) or "auto" (onnx when installed).
    `workers`: lanes that decode and embed in parallel (None: one per CPU; 0 or 1: one
    image group at a time), and with `finetune` its DataLoader processes (None: 1).
    `finetune` (a `FineTuning` recipe) trains the backbone itself on the paintings first, on
    `device` ("auto": the GPU when there is one); None keeps the ImageNet weights frozen.
    `thumbnails` keeps a small WebP of each training painting in the similarity index
    (`similar()` always works; thumbnails let the page and report show the paintings).
    `ray` extracts features on a Ray cluster ("local": one started here; else its address,
    "auto" for the one this machine joined); needs the `ray` extra.
    `balance` weighs the training paintings (see `balancing.BALANCINGS`; "breadth": movements,
    sources and artists count equally). `size_variants` also shows the head each training
    painting shrunk (see `SizeVariants`; None: only as it is). `text_prior` (image+text
    backbones) mixes zero-shot logits into the head, most for movements with few paintings
    (see `text_prior.TextPrior`).
    """

    def __init__(
        self,
        backbone: str = DEFAULT_BACKBONE,
        *,
        features: str = DEFAULT_RECIPE,
        head: str = "auto",
        weights: str | os.PathLike | None = None,
        split: str = "auto",
        test_fraction: float = 0.1,
        negatives: int = DEFAULT_NEGATIVES,
        seed: int = 0,
        cache_dir: str | os.PathLike | Literal[False] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        workers: int | None = None,
        engine: str = "auto",
        finetune: FineTuning | None = None,
        device: str = "auto",
        thumbnails: bool = True,
        ray: str | None = None,
        balance: str = DEFAULT_BALANCING,
        size_variants: SizeVariants | None = SizeVariants(),
        text_prior: bool = False,
        show_progress: bool = True,
    ):
        self.backbone = backbone
        self.features = features
        self.head = head
        self.weights = weights
        self.split = split
        self.test_fraction = test_fraction
        self.negatives = negatives
        self.seed = seed
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self.workers = workers
        self.engine = engine
        self.thumbnails = thumbnails
        self.ray = ray
        self.finetune = finetune
        self.device = device
        self.balance = balance
        self.size_variants = size_variants
        self.text_prior = text_prior
        self.show_progress = show_progress
        self._extractors: list[FeatureExtractor] | None = None

    # ----------------------------------------------------------------- plumbing
    @property
    def feature_extractors(self) -> list[FeatureExtractor]:
        """One per backbone: its network, engine and the preprocessing that cuts the views
        (what an exported ONNX graph expects as input). Built on first use; a loaded
        model's recorded preprocessing is authoritative."""
        if self._extractors is None:
            recipe = get_recipe(self.features)
            names = split_backbones(self.backbone)
            if self.weights and len(names) > 1:
                raise ArtstyleError("--weights applies to a single backbone, not to a '+' list")
            recorded = getattr(self, "config_", None)
            weights = getattr(self, "backbone_weights_", None) or self.weights
            extractors = []
            graphs = self.int8_graphs_ if getattr(self, "precision_", "fp32") == "int8" else getattr(self, "graphs_", None)
            for i, name in enumerate(names):
                backbone = load_backbone(name, weights, engine=self.engine, graphs=graphs[i] if graphs else None,
                                         stat_strides=recipe.stat_strides)
                preprocessing = None
                if recorded is not None:
                    entry = recorded["features"]["backbones"][i]
                    preprocessing = Preprocessing.from_dict(entry["preprocessing"])
                    if entry.get("weights_id") not in (None, backbone.weights_id):
                        raise BundleError(f"{weights or name}: weights differ from the ones this model was trained with "
                                          f"({backbone.weights_id}, not {entry['weights_id']}): pass the same file")
                extractors.append(FeatureExtractor(backbone, recipe, preprocessing))
            self._extractors = extractors
        return self._extractors

    def extract(
        self, sources: Sequence[ImageInput], keys: Sequence[str] | None = None, description: str = "Extracting features"
    ) -> Extraction:
        """This classifier's feature vectors for `sources` (every backbone's, concatenated;
        a row failing in any is an error row). `keys`: content hashes when known."""
        parts = []
        root = None if self.cache_dir is False else (self.cache_dir or default_cache_dir())
        extractors = self.feature_extractors
        for extractor in extractors:
            label = description if len(extractors) == 1 else f"{description} ({extractor.backbone.name})"
            runner = None
            if self.ray is not None:
                from ..features.ray_extraction import ray_runner

                weights = getattr(self, "backbone_weights_", None) or self.weights
                runner = ray_runner(extractor, weights, self.engine, self.ray)
            parts.append(extract_features(
                sources,
                extractor,
                keys=keys,
                cache=FeatureCache(root, extractor.identity()) if root is not None else None,
                batch_size=self.batch_size,
                workers=self.workers,
                show_progress=self.show_progress,
                description=label,
                runner=runner,
            ))
        if len(parts) == 1:
            return parts[0]
        errors: dict[int, str] = {}
        for part in parts:
            errors.update(part.errors)
        features = np.concatenate([p.features for p in parts], axis=1)
        return Extraction(features, errors, min(p.n_cached for p in parts), max(p.n_computed for p in parts))

    def _check_fitted(self) -> None:
        if not hasattr(self, "head_"):
            raise NotFittedError("this StyleClassifier is not fitted yet; call fit() or StyleClassifier.load()")

    @property
    def n_features_in_(self) -> int:
        self._check_fitted()
        return self.head_.dim

    # ---------------------------------------------------------------------- fit
    def fit(
        self,
        data: Roots | Dataset | Sequence[ImageInput],
        y: Sequence[str] | None = None,
        *,
        test_dir: str | os.PathLike | None = None,
        strict: bool = False,
        non_paintings: str | os.PathLike | None = None,
    ) -> StyleClassifier:
        """Train on painting trees (one path, several merged as one tree, or a scanned Dataset),
        or on images `data` with labels `y`.

        A test split is held out (by artist or stratified, see `split`) unless `test_dir`
        is given; `strict` refuses a `test_dir` with movements absent from training.
        On the rest, the head kind and regularisation are chosen, the probabilities
        calibrated and the "uncertain"/"mixed"/"not a painting" thresholds set by
        cross-validation with artist-disjoint folds; the head is then refitted on it all.
        `non_paintings` is a folder of real non-painting images the detector learns from
        instead of the ones that ship (embedded by this model's own network: a fine-tuned
        one needs them, the shipped features come from the ImageNet weights).
        """
        from .training import calibration_folds, train_head, training_rows, training_table

        self._check_params()
        # listed now: a wrong folder is refused before the extraction, not after it
        real_negatives = folder_non_paintings(non_paintings) if non_paintings is not None else None
        with stage("scan and hashing"):
            images = labelled_images(data, y, show_progress=self.show_progress)
        size_note = size_warning(size_profile(images.records))
        if size_note:
            variants = self.size_variants
            log.warning(size_note + (f" (size variants counter it: each painting is also seen at {variants.low}-{variants.high} px)"
                                     if variants and variants.copies else " (--size-variants counters it)"))
        test_fraction = 0.0 if test_dir else self.test_fraction
        split = make_split(images.records, self.split, seed=self.seed, val_fraction=0.0, test_fraction=test_fraction)
        self._extractors, self.backbone_weights_, self.finetuned_, self.graphs_ = None, None, None, None
        self.precision_, self.int8_graphs_ = "fp32", None  # a loaded model's int8 graph is of its old network
        if self.finetune is not None:
            with stage("fine-tuning"):
                fine_tune(self, images, split)
        with stage("extraction"):
            extraction = self.extract(images.sources, images.keys, "Extracting features")
        log.info("features: %d reused from cache, %d computed", extraction.n_cached, extraction.n_computed)
        skipped = skipped_report(images.unreadable, images.records, extraction.errors)
        table = training_table(images.records, split, extraction.ok)
        folds, fold_mode = calibration_folds([images.records[i] for i in table.train], self.seed)
        if self.finetuned_ is not None:  # the tuned network has learnt these: held-out scores would flatter it
            folds[[split.assignment[images.records[i].path] == "train" for i in table.train]] = -1
        x = extraction.features
        rows = training_rows(self, images, table, x, folds)
        with stage("non-painting features"):
            negatives = self.non_painting_features(real_negatives)
        trained = train_head(
            rows.x, rows.y, len(table.labels), rows.folds,
            kinds=HEAD_KINDS if self.head == "auto" else (self.head,),
            negatives=negatives, labels=table.labels, seed=self.seed, weighting=rows.weighting, scored=rows.scored,
            groups=rows.groups, prior=self._text_prior(table.labels) if self.text_prior else None,
        )
        log.info(
            "head: %s (alpha %g) chosen by %d-fold cross-validation by %s; temperature %.2f",
            trained.head_kind, trained.info["alpha"], trained.info["cv_folds"], fold_mode, trained.head.temperature,
        )
        first = self.feature_extractors[0]
        tiles = tile_columns(first.backbone.feature_dim, first.recipe.grid, first.recipe.sized)
        trained = fit_size_bands(trained, rows, tiles, table.labels)
        trained.held_out = trained.held_out[: len(table.train)]  # the paintings' rows come first
        self._adopt(trained, table.labels)
        with stage("similarity index"):
            self.similar_ = training_index(images, table.train, x[table.train], self.thumbnails, self.seed,
                                           self.show_progress)
        self.config_ = fitted_config(self, trained, split, fold_mode, images.summary, len(skipped), x.shape[1])
        self.config_["sizes"] = size_profile([images.records[i] for i in table.train])
        self.splits_csv_ = splits_csv(images.records, split)
        with stage("test metrics"):
            self.metrics_ = fit_metrics(self, trained, table, x, images, fold_mode, skipped, test_dir, strict)
        return self

    def _check_params(self) -> None:
        if self.split not in SPLIT_MODES:
            raise ArtstyleError(f"unknown split {self.split!r}; choose one of {', '.join(SPLIT_MODES)}")
        check_balancing(self.balance)
        if self.size_variants is not None and not isinstance(self.size_variants, SizeVariants):
            raise ArtstyleError("size_variants must be a SizeVariants or None")
        if self.head != "auto" and self.head not in HEAD_KINDS:
            raise ArtstyleError(f"unknown head {self.head!r}; choose auto or one of {', '.join(HEAD_KINDS)}")
        if self.finetune is not None and len(split_backbones(self.backbone)) > 1:
            raise ArtstyleError("fine-tuning trains one backbone; a '+' list of backbones cannot be fine-tuned")
        if self.finetune is not None:
            require_torch("fine-tuning (--finetune)")
        if self.text_prior:
            from ..features.backbones import get_info

            names = split_backbones(self.backbone)
            if len(names) > 1 or names[0].startswith("timm:") or not get_info(names[0]).text:
                raise ArtstyleError(f"--text-prior needs one image+text backbone (clip-vit-b32, clip-vit-b16, "
                                    f"siglip-b16), not {self.backbone}")
            if self.finetune is not None:
                raise ArtstyleError("--text-prior and --finetune do not mix: a tuned image tower leaves the text's space")

    def _text_prior(self, labels: list[str]):
        """The zero-shot prior of `labels` from this classifier's (one) image+text backbone."""
        from .text_prior import text_prior

        (extractor,) = self.feature_extractors
        return text_prior(extractor.backbone, getattr(self, "backbone_weights_", None) or self.weights, labels)

    def non_painting_features(self, real: FolderNonPaintings | None = None) -> NonPaintings | None:
        """What the painting detector learns from: real non-paintings (the images of
        `real`, embedded here, else the features shipped for the backbone(s)) plus
        generated ones (None: no detector). In each backbone's global-view columns, the
        part of every recipe's vector they share, and its texture statistics when the
        real ones come with the recipe's own (photographs differ from paint in grain)."""
        return detector_training_data(self, real)

    def _adopt(self, trained: TrainedHead, labels: list[str]) -> None:
        self.classes_ = np.array(labels)
        self.head_ = trained.head
        self.abstention_ = trained.abstention
        self.painting_detector_ = trained.detector

    def backbone_records(self) -> list[dict]:
        """What config.json records of each backbone (see `folder.backbone_records`)."""
        return backbone_records(self)

    # ------------------------------------------------------------------ predict
    def _score(self, images: Sequence[ImageInput]) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
        """(features, calibrated probabilities, errors by row) for images or one image."""
        self._check_fitted()
        extraction = self.extract(list(images), None, "Predicting")
        return extraction.features, self.head_.predict_proba(extraction.features), extraction.errors

    def _score_all(self, images: Sequence[ImageInput]) -> tuple[np.ndarray, np.ndarray]:
        """(features, probabilities); the first unreadable image raises ImageLoadError."""
        images = _as_list(images)
        features, proba, errors = self._score(images)
        if errors:
            i, reason = next(iter(sorted(errors.items())))
            raise ImageLoadError(f"{source_name(images[i], i)}: {reason}")
        return features, proba

    def painting_mask(self, features: np.ndarray) -> np.ndarray:
        """Whether each feature row passes the painting detector (all, without one)."""
        if self.painting_detector_ is None:  # trained with negatives=0
            return np.ones(len(features), dtype=bool)
        return self.painting_detector_.is_painting(features)

    def predict_proba(self, images: Sequence[ImageInput]) -> np.ndarray:
        """(n_images, n_classes) calibrated probabilities, columns in `classes_` order."""
        return self._score_all(images)[1]

    def predict(self, images: Sequence[ImageInput]) -> list[str]:  # most probable movement per image
        return [str(self.classes_[i]) for i in self.predict_proba(images).argmax(axis=1)]

    def is_painting(self, images: Sequence[ImageInput]) -> np.ndarray:
        """False for images unlike any training painting (slides, charts, photos, ...)."""
        return self.painting_mask(self._score_all(images)[0])

    def predict_top_k(self, images: Sequence[ImageInput], k: int = 3) -> list[Prediction]:
        """Top-k movements per image with the uncertain / mixed / is_painting flags; an
        unreadable image gets an error instead of failing the rest."""
        if k < 1:
            raise ArtstyleError("top-k must be at least 1")
        images = _as_list(images)
        features, proba, errors = self._score(images)
        uncertain, mixed = self.abstention_.flags(proba)
        painting = self.painting_mask(features)
        trained = training_movements(images, features, errors, self.training_files(), getattr(self, "similar_", None))
        kinds = self.painting_detector_.kinds(features) if self.painting_detector_ is not None else [None] * len(images)
        results = []
        for i, row in enumerate(proba):
            name = source_name(images[i], i)
            if i in errors:
                results.append(Prediction(name, [], errors[i]))
                continue
            order = np.argsort(-row, kind="stable")
            results.append(Prediction(
                name,
                [(str(self.classes_[j]), float(row[j])) for j in order[:k]],
                uncertain=bool(uncertain[i]),
                mixed=[str(self.classes_[j]) for j in order[:2]] if mixed[i] and len(order) > 1 else None,
                is_painting=bool(painting[i]),
                not_painting_kind=None if painting[i] else kinds[i],
                in_training=trained[i],
                **family_fields(row, self.classes_, self.abstention_.uncertain_below, not (uncertain[i] or mixed[i])),
            ))
        return results

    def similar(self, images: Sequence[ImageInput], k: int = 5) -> list[SimilarPaintings]:
        """The `k` training paintings most similar to each image (cosine similarity of the
        model's features); an unreadable image gets an error instead of failing the rest."""
        self._check_fitted()
        if getattr(self, "similar_", None) is None:
            raise ArtstyleError("this model keeps no similarity index (trained by an older artstyle); retrain it")
        if k < 1:
            raise ArtstyleError("k must be at least 1")
        images = _as_list(images)
        extraction = self.extract(images, None, "Searching")
        ok = np.flatnonzero(extraction.ok)
        keys = [file_sha256(images[i]) if isinstance(images[i], (str, os.PathLike)) else None for i in ok]
        found = dict(zip(ok, self.similar_.neighbours(extraction.features[ok], k, keys))) if len(ok) else {}
        results = []
        for i, img in enumerate(images):
            near, itself = found.get(i, ([], None))
            results.append(SimilarPaintings(source_name(img, i), near, extraction.errors.get(i), itself))
        return results

    def explain(self, images: Sequence[ImageInput], movement: str | None = None) -> list[Explanation]:
        """Grad-CAM heat-maps of `movement` (None: each image's predicted movement) over
        each image; an unreadable image gets an error instead of failing the rest. The
        gradients run in torch, but the movement predicted and the probability given are
        those of the engine `predict_proba` runs (int8 or ONNX): one answer, one number."""
        require_torch("explain (heat-maps need the network's gradients)")
        from .explain import explain_images

        images = _as_list(images)
        _, proba, _ = self._score(images)
        labels = [str(c) for c in self.classes_]
        results = explain_images(self, images, [movement or labels[int(row.argmax())] for row in proba])
        for row, result in zip(proba, results):
            if result.heat is not None:
                result.probability = float(row[labels.index(result.movement)])
        return results

    # ----------------------------------------------------------------- evaluate
    def training_files(self) -> dict[str, str]:
        """Content hash -> movement of the images the head was fitted or tuned on (train + val)."""
        self._check_fitted()
        cached = getattr(self, "_training_files", None)
        if cached is None or cached[0] is not self.splits_csv_:  # read once per fitted or loaded split
            rows = parse_splits_csv(self.splits_csv_) if self.splits_csv_ else []  # zero-shot: no training images
            cached = self._training_files = (self.splits_csv_, {
                row["sha256"]: row["label"] for row in rows if row["split"] in ("train", "val")})
        return cached[1]

    def evaluate(self, data: Roots | Dataset, *, include_training: bool = False,
                 strict: bool = False) -> Evaluation:
        """Score a labelled painting tree (or several, merged as one).

        Images this model was trained or tuned on are left out (so the training tree
        yields its held-out test split) unless `include_training` is set: then they are
        scored apart, as memorised. Images of movements the model does not know count as
        misses (`unknown_to_model` in the metrics lists them), or, with `strict`, make the
        whole tree an error.
        """
        self._check_fitted()
        return evaluate_classifier(self, data, include_training=include_training, strict=strict)

    # -------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike, *, graphs: bool = True) -> Path:
        """Write the model folder (safetensors + JSON). With `graphs`, it also carries each
        network as an ONNX graph (about 14 MB for EfficientNet-Lite0): predicting from it
        then needs neither torch nor a warm cache, and always runs the very network the
        head was trained on."""
        self._check_fitted()
        bundle = Bundle(self.config_, self.head_, self.splits_csv_, self.metrics_, self.painting_detector_,
                        getattr(self, "backbone_weights_", None), getattr(self, "similar_", None),
                        self._graphs() if graphs else None, getattr(self, "int8_graphs_", None) if graphs else None)
        with stage("save"):
            return save_bundle(path, bundle)

    def _graphs(self) -> list[BundledGraph]:
        """Each backbone's embedding graph: the loaded folder's, else exported (or cached)."""
        loaded = getattr(self, "graphs_", None)
        if loaded is not None:
            return loaded
        return [BundledGraph(e.backbone.graph(e.recipe.stats), e.recipe.stats, e.backbone.description())
                for e in self.feature_extractors]

    @classmethod
    def load(cls, path: str | os.PathLike, *, precision: str = "auto", weights: str | os.PathLike | None = None,
             **params) -> StyleClassifier:
        """Read a model folder; `params` (cache_dir, batch_size, ...) tune how it runs.
        `precision` "int8" runs the folder's int8 embedding (see `quantize_model`), "fp32"
        ignores it, "auto" takes it where the engine is onnx and this CPU gains from it.
        `weights`: the backbone's weights file where the network itself must run (heat-maps,
        export, `engine="torch"`, a folder without its graph); else `ARTSTYLE_WEIGHTS`, else the
        hub's cached copy. Whichever is used must have the digest the model recorded."""
        bundle = load_bundle(path)
        backbones = bundle.config["features"]["backbones"]
        clf = cls("+".join(b["name"] for b in backbones), features=bundle.config["features"]["recipe"],
                  weights=weights_to_run(backbones, weights), **params)
        return adopt_bundle(clf, bundle, path, precision)
