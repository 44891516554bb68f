"""Training pipeline: the only package that imports TensorFlow."""
