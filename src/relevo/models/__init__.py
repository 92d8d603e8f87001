"""relevo's offline recommender models, their evaluation and the model catalog.

Every model follows `base.Recommender` (fit / recommend / similar_items /
save / load); `catalog.CATALOG` lists them by report name; `evaluation`
holds the temporal split, the metrics and the experiment behind
``relevo evaluate``. See ``docs/models.md``.
"""
