"""Training entry points on TRL: continued pretraining (``training.cpt``) and the small modules it is built from.

Each module has one job (recipe configs, data mixture, tokenization, checkpoints, model card, Hub upload, memory
estimates) so that the entry points stay thin and every piece can be tested on its own with a tiny model.
"""
