"""The fastText math classifier: training data, two training rounds (LLM-labelled round 2), scoring."""

from mathcode_pile.classifier.data import LabeledText, prepare_text, sample_training_sources
from mathcode_pile.classifier.model import MathClassifier
from mathcode_pile.classifier.rounds import ClassifierTrainingSettings, train_math_classifier
from mathcode_pile.classifier.train import FastTextParams

__all__ = [
    "ClassifierTrainingSettings",
    "FastTextParams",
    "LabeledText",
    "MathClassifier",
    "prepare_text",
    "sample_training_sources",
    "train_math_classifier",
]
