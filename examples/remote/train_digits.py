"""A small model trained on a Ray cluster from a laptop, tracked in one run (runs on CPU in ~2 s).

    tidal submit train_digits.py --epochs 20 --address http://head:8265 --requirements requirements.txt \
        --project digits --follow

or, from inside the script, ``--remote http://head:8265`` (``run.execute_remotely``: the local process
stops there and the same run goes on in the cluster). With ``TIDAL_TRACKING_URI`` pointing at a
``tidal server`` the run waits in its queue until the cluster has room, and its metrics, images and
weights land in that server's store (artifacts in S3 when the server runs with ``--artifacts s3://...``).
"""

from __future__ import annotations

import argparse
import pickle
import tempfile
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split

import tidal


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--remote", help="a Ray head (http://head:8265): run the rest of this script there")
    options = parser.parse_args()
    run = tidal.init(project="digits", name="sgd", config={"epochs": options.epochs})
    if options.remote:
        run.execute_remotely(address=options.remote, cpus=1)  # the local process exits here
    images, labels = load_digits(return_X_y=True)
    train_x, test_x, train_y, test_y = train_test_split(images / 16.0, labels, test_size=0.25, random_state=0)
    model = SGDClassifier(loss="log_loss", random_state=0)
    for epoch in range(options.epochs):
        model.partial_fit(train_x, train_y, classes=np.arange(10))
        run.log_metrics({"train/accuracy": model.score(train_x, train_y),
                         "test/accuracy": model.score(test_x, test_y)}, step=epoch)
    wrong = np.flatnonzero(model.predict(test_x) != test_y)[:8]
    if len(wrong):  # the digits it still gets wrong, side by side
        strip = np.hstack([(test_x[index].reshape(8, 8) * 255).astype(np.uint8) for index in wrong])
        run.log_image("mistakes", np.kron(strip, np.ones((8, 8), dtype=np.uint8)), step=options.epochs)
    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "model.pkl"
        weights.write_bytes(pickle.dumps(model))
        run.log_artifact(weights, "weights/model.pkl")
    print(f"test accuracy {model.score(test_x, test_y):.3f}")


if __name__ == "__main__":
    main()
