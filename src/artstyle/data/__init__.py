"""Stage 1, the paintings: from a folder (or an archive) to labelled, decodable image records.

`labels` (movement and artist names) -> `dataset` (scan a `<movement>/<artist>/<image>` tree)
-> `images` (robust decoding) -> `splits` (held-out test and cross-validation folds).
`download` + `archive` fetch and unpack a published dataset; `doctor` checks a tree
without changing it. Nothing here imports torch.
"""
