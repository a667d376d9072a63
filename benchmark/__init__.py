"""The benchmark: procedural scenes and photo sets, the judge and the scene captioner,
metrics, confidence intervals and evaluation helpers. Uses ``codec``; the codec runtime never
imports it."""
