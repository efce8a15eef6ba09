"""Trained models outside the pipeline: `genlab generate` draws images from one, `genlab score` scores images
made anywhere under the pipeline's protocol. No stage imports this package."""
