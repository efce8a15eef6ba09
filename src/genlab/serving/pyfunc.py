"""A trained genlab model as an MLflow pyfunc model, through MLflow's models-from-code: MLflow keeps this file
in the MLflow Model and runs it to load one, so loading unpickles no code. The weights are genlab's weights-only
model file (genlab.models.files), the MLflow Model's one artifact, read as data.

A noise-to-image model takes a DataFrame, one row a request: `n` images drawn from noise seed `seed`, all of
class `label` (-1: every class in turn, as the evaluate stage draws them; an unconditional model takes -1 only).
The rows' images come back in order, uint8 (N, C, H, W): the same bytes `genlab generate MODEL --n n --seed seed`
writes with the same noise batch. An image-to-image model takes its input images, uint8 (N, C, H, W), and
gives its outputs for them (the params `seed` seeds a model's own noise, e.g. pix2pix's)."""
from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel

#: Images a network pass draws: with the same batches `genlab generate` gives the same bytes.
BATCH_SIZE = 250


class GenlabModel(PythonModel):
    def load_context(self, context) -> None:
        from genlab.models.files import read_model_file

        config = context.model_config or {}
        self.batch_size = int(config.get("batch_size", BATCH_SIZE))
        self.model = read_model_file(Path(context.artifacts["model_file"]), "cpu",
                                     "the MLflow Model's model file is damaged: register the run's model again")

    def predict(self, context, model_input, params=None):
        from genlab.serving.generate import draw

        seed = int((params or {}).get("seed", 0))
        if self.model.input_shape is not None:  # it translates the images it is given
            return draw(self.model, 0, seed, self.batch_size, inputs=np.asarray(model_input, dtype=np.uint8)).images.numpy()
        out = []
        for row in model_input.itertuples(index=False):
            label = None if int(row.label) < 0 else int(row.label)
            out.append(draw(self.model, int(row.n), int(row.seed), self.batch_size, label).images.numpy())
        return np.concatenate(out)


mlflow.models.set_model(GenlabModel())
