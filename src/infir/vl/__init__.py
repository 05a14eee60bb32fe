"""Vision-language: generated data, multimodal batches, the image-text filter and the four-stage curriculum."""
