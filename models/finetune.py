"""Fine-tune a detector for a city's own street-order classes, then export it for the detector.

COCO has no class for a stall, a pile of materials, laundry or a banner, so ``street_drying`` and
``illegal_ads`` cannot fire with a COCO model, and vending/piling rely on proxies.  This script
trains ultralytics YOLO on the city's own labelled photos (best: frames from its own cameras) and
exports the result in the format the detector machine runs best.

1. Lay out a YOLO dataset (one ``.txt`` label file per image, ``class cx cy w h`` normalised)::

       dataset/
         images/train/*.jpg   labels/train/*.txt
         images/val/*.jpg     labels/val/*.txt

2. Write its ``data.yaml`` with the class names the scenarios use (``configs/scenarios.yaml``)::

       python models/finetune.py init dataset/            # writes dataset/data.yaml

3. Train from a COCO checkpoint (transfer learning; a few hundred labelled boxes per class is a start)::

       python models/finetune.py train dataset/data.yaml --base yolov8n.pt --epochs 100 --imgsz 640 \\
           --name city-street-order

4. Export for the detector (TFLite int8 for small CPUs, ONNX, or OpenVINO for Intel)::

       python models/finetune.py export runs/detect/city-street-order/weights/best.pt --format tflite --int8 \\
           --data dataset/data.yaml

5. Point ``detector.weights`` (or ``NONSITE_WEIGHTS``) at the exported file, record its sha256 in
   ``models/manifest.yaml``, and list its class names in ``configs/scenarios.yaml`` (for example
   ``street_drying.classes: [laundry]``, ``illegal_ads.classes: [banner, poster, a-frame sign]``,
   ``material_piling.classes: [pile, static_object]``).  At start the detector logs every scenario
   whose classes the model still lacks.

Training needs the ``ultralytics`` package (already a dependency) and, for the base checkpoint,
network access to ultralytics' releases (or a local ``.pt`` file).  Weights are never committed.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import yaml

CITY_CLASSES = ["stall", "cart", "goods", "pile", "laundry", "banner", "poster", "a-frame sign"]


def write_data_yaml(dataset: Path, classes: list[str]) -> Path:
    """``dataset/data.yaml`` for the standard images/{train,val} + labels/{train,val} layout."""
    dataset = dataset.resolve()
    for split in ("train", "val"):
        if not (dataset / "images" / split).is_dir():
            raise SystemExit(f"{dataset}/images/{split}: folder not found (see the layout in this script's help)")
    data = {"path": str(dataset), "train": "images/train", "val": "images/val",
            "names": {index: name for index, name in enumerate(classes)}}
    target = dataset / "data.yaml"
    target.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return target


def train(data: Path, base: str, epochs: int, imgsz: int, batch: int, name: str, device: str,
          project: Path) -> Path:
    """Train from ``base`` (a .pt checkpoint or a model .yaml to start from scratch); returns best.pt."""
    from ultralytics import YOLO

    model = YOLO(base, task="detect")
    model.train(data=str(data), epochs=epochs, imgsz=imgsz, batch=batch, name=name, device=device,
                project=str(project), exist_ok=True, plots=False)
    best = Path(model.trainer.save_dir) / "weights" / "best.pt"
    return best if best.exists() else Path(model.trainer.save_dir) / "weights" / "last.pt"


def export(weights: Path, fmt: str, imgsz: int, int8: bool, data: Path | None) -> Path:
    """Export for inference: ``tflite`` (``--int8`` needs ``--data`` for calibration), ``onnx``, ``openvino``."""
    from ultralytics import YOLO

    options = {"format": fmt, "imgsz": imgsz}
    if int8:
        options["int8"] = True
        if data is not None:
            options["data"] = str(data)
    return Path(YOLO(str(weights), task="detect").export(**options))


def sha256(path: Path) -> str:
    if path.is_dir():  # OpenVINO exports a folder: hash its files in name order
        digest = hashlib.sha256()
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(file.read_bytes())
        return digest.hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fine-tune and export YOLO for a city's street-order classes")
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser("init", help="write data.yaml for a dataset folder")
    init.add_argument("dataset", type=Path)
    init.add_argument("--classes", nargs="+", default=CITY_CLASSES)
    fit = commands.add_parser("train", help="train from a COCO checkpoint")
    fit.add_argument("data", type=Path)
    fit.add_argument("--base", default="yolov8n.pt", help="checkpoint (.pt) or model .yaml (from scratch)")
    fit.add_argument("--epochs", type=int, default=100)
    fit.add_argument("--imgsz", type=int, default=640)
    fit.add_argument("--batch", type=int, default=16)
    fit.add_argument("--device", default="cpu")
    fit.add_argument("--name", default="city-street-order")
    fit.add_argument("--project", type=Path, default=Path("runs/detect"))
    out = commands.add_parser("export", help="export trained weights for the detector")
    out.add_argument("weights", type=Path)
    out.add_argument("--format", default="tflite", choices=("tflite", "onnx", "openvino", "torchscript"))
    out.add_argument("--imgsz", type=int, default=640)
    out.add_argument("--int8", action="store_true")
    out.add_argument("--data", type=Path, default=None, help="data.yaml for int8 calibration")
    args = parser.parse_args(argv)

    if args.command == "init":
        print(write_data_yaml(args.dataset, args.classes))
    elif args.command == "train":
        best = train(args.data, args.base, args.epochs, args.imgsz, args.batch, args.name, args.device,
                     args.project)
        print(f"{best}  sha256 {sha256(best)}")
    else:
        exported = export(args.weights, args.format, args.imgsz, args.int8, args.data)
        print(f"{exported}  sha256 {sha256(exported)}")
        print("next: set detector.weights to it, pin the sha256 in models/manifest.yaml, "
              "and list its classes in configs/scenarios.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
