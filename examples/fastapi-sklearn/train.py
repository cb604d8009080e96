"""Train the car-loan model, write its reference set and build the Driftline baseline.

    python train.py            # writes model.pkl, reference.parquet, baseline.json here

In your own project the model and the reference data are yours; what matters for Driftline is
the reference file (features + prediction + probability + label) and the one command at the end.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from driftline_demo.data import CATEGORICAL, TARGET, generate, write_parquet
from driftline_demo.model import LoanModel, save_model

HERE = Path(__file__).resolve().parent


def main(out: Path = HERE, rows: int = 20000) -> Path:
    train = generate(rows // 2, seed=1)
    model = LoanModel.fit(train, train[TARGET])
    save_model(model, out / "model.pkl")

    reference = generate(rows, seed=2)
    cols = dict(reference)
    cols["prediction"] = model.predict(reference).astype(int)
    cols["proba_default"] = model.predict_proba(reference)[:, 1]
    write_parquet(out / "reference.parquet", cols)
    baseline = out / "baseline.json"
    subprocess.run([sys.executable, "-m", "driftline", "baseline", "build", str(out / "reference.parquet"),
                    "-o", str(baseline), "--prediction", "prediction", "--proba", "proba_default",
                    "--target", TARGET, "--categorical", ",".join(CATEGORICAL),
                    "--model-name", "car-loan", "--model-version", "1"], check=True)
    return baseline


if __name__ == "__main__":
    print(main())
