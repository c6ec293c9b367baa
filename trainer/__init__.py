"""The trainer: corpus, augmentation, contrastive training, evaluation, publishing."""
