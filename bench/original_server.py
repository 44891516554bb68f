"""The original project's way of serving, for comparison: one poster per request, a new interpreter each time.

    .venv/bin/python -m bench.original_server --model models/effnet-lite0-posters/model.tflite --port 5000
    curl -s --data-binary @<(base64 -w0 heat.jpg) http://127.0.0.1:5000/analysis/

POST /analysis/ takes the base64 text of one image, loads a NEW LiteRT interpreter from the model file
(as the original did for every request), decodes the image at the model's input size with posterq's
own preprocessing, invokes, and answers {"result": [genres]}. Flask's threaded development server,
as the original ran. bench.original starts it as a subprocess; it is not part of posterq.
"""

import argparse
import base64
import binascii
import json
import sys
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from flask import Flask, jsonify, request

from posterq.genres import GENRES
from posterq.imaging import load_input
from posterq.label_rule import assign_names


def create_app(model: Path) -> Flask:
    """A Flask app that classifies one base64 poster per request with a fresh interpreter."""
    meta_file = model.parent / "model.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    genres = meta.get("genres", list(GENRES))
    rule = meta.get("label_rule", {})
    # The seed export has no bundle: its thresholds are the original project's 0.5.
    thresholds = np.asarray(rule.get("thresholds", [0.5] * len(genres)), np.float32)
    top_k = int(rule.get("top_k", 3))
    app = Flask(__name__)

    @app.post("/analysis/")
    def analyse():
        """Decode the base64 poster, load the model, invoke, answer with its genres."""
        try:
            data = base64.b64decode(request.get_data(), validate=False)
        except (binascii.Error, ValueError):
            return jsonify({"error": "not base64"}), 400
        interpreter = Interpreter(model_path=str(model))  # the original's cost: one per request
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        height, width = (int(v) for v in detail["shape"][1:3])
        try:
            pixels = load_input(data, (height, width))
        except Exception as exc:  # noqa: BLE001 - any decoding failure is a bad request here
            return jsonify({"error": str(exc)}), 400
        interpreter.set_tensor(detail["index"], pixels[None].astype(detail["dtype"]))
        interpreter.invoke()
        scores = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]
        return jsonify({"result": assign_names(scores, thresholds, top_k, genres)})

    @app.get("/healthz")
    def healthz():
        """Alive."""
        return jsonify({"ok": True})

    return app


def main() -> int:
    """Serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a .tflite file")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    create_app(args.model.resolve()).run(host="127.0.0.1", port=args.port, threaded=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
