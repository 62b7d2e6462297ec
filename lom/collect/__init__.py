"""Dataset collection, a program of its own: `python -m lom.collect --env ENV --out DIR` trains SAC online in a
gymnasium env (sac.py) and cuts D4RL-style datasets from its run (collection.py; docs/collect.md);
`python -m lom.collect.multimodal` mixes several collections' policies into one multimodal dataset (multimodal.py),
whose episodes' running directions directions.py reads."""
