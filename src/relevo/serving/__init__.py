"""Serving recommendations: the promoted trained model blended with live signals.

- `served_model`: a loaded model version with what serving needs around it (item
  categories, live profile features), and the registry's loader;
- `blend`: weighted rank fusion of the sources, with the reasons per item;
- `results`: what an answer looks like;
- `recommend`: the pipeline behind `Engine.recommend`, `Engine.similar_items`
  and `Engine.score_variants`.

See ``docs/models.md`` ("Serving").
"""
