"""Stage 3, the model: from feature vectors to calibrated answers, and the estimator.

`head` (logistic regression, linear SVM, MLP) chosen and calibrated by `training` with
`calibration` (temperature, "uncertain"/"mixed" thresholds) and `painting` (the "not a
painting" detector, taught by `negatives`); `metrics` scores them; `bundle` saves and loads
a model folder (safetensors + JSON); `classifier` is the `StyleClassifier` estimator that
runs the whole pipeline; `prediction` is what it answers; `export` writes one ONNX graph.
"""
