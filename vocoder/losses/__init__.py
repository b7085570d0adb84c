"""Training losses, one module per family: `teacher` (the WaveNet's cross-entropy), `distillation` (probability
density distillation of a student from a teacher), `spectral` (STFT losses against real audio), `adversarial`
(least-squares GAN and feature matching against a discriminator)."""
