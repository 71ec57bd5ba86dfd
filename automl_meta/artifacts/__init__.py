"""Artifacts: meta-trained learners saved as safetensors with a JSON manifest, and the bundled defaults."""

from .artifact import FORMAT_VERSION, MetaArtifact, load
from .registry import bundled

__all__ = ["MetaArtifact", "load", "bundled", "FORMAT_VERSION"]
