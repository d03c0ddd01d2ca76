"""kcnn: song-level representations of music from audio words and a k-max pooling CNN."""

__version__ = "0.1.0"
