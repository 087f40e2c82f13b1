# Copyright (c) r2mf-monai contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""Synthetic multi-view scoliosis radiographs with spinal-column masks: the project's stand-in for §4.1's data.

The paper's 228 clinical patient sets (coronal standing, left bending, right bending; §4.1 of R2MF-Net) are
private. :func:`synthesize_dataset` writes a data set of the same shape, seeded and reproducible::

    from r2mf_monai.data.synthetic import synthesize_dataset
    datalist = synthesize_dataset("data/synthetic", patients=228, seed=0)   # or: r2mf-monai synthesize OUT

Modules: :mod:`.anatomy` (curves, flexibility, geometry, Cobb from corners), :mod:`.render` (attenuation map,
detector, processing, mask), :mod:`.writers` (DICOM DX, PNG, JSON), :mod:`.synthesize` (the data set),
:mod:`.preview` (a picture of it).

Folder layout::

    OUT/images/<patient_id>_<view>.dcm | .png    radiographs (DICOM DX, or 8-bit / 16-bit PNG), seeded mix
    OUT/labels/<patient_id>_<view>.png           masks, uint8 0/255: T1..L5 bodies + discs + sacrum, one region
    OUT/datalist.json                            {"training": [...], "validation": [...], "test": [...]}
    OUT/ground_truth.json                        the schema below
    OUT/preview.png                              with preview=True

Datalist items are ``{"image", "label", "view", "patient_id", "quality"}`` with paths relative to OUT (use
``monai.data.load_decathlon_datalist(path, data_list_key="training", base_dir=OUT)``). Lists are split by patient:
every patient's three views are in the same list (default 148/40/40 of 228, the same proportions otherwise).

``ground_truth.json`` (schema_version 1)::

    {
      "schema_version": 1, "generator": "r2mf_monai.data.synthetic", "seed": int, "scale": float,
      "vertebrae": ["T1", ..., "L5"],                      # index i of every per-vertebra list
      "conventions": {...},                                # the conventions below, in words
      "split": {"training": n, "validation": n, "test": n},
      "patients": {
        "P0001": {
          "patient_id": "P0001", "index": 0, "sex": "F", "age": 14, "split": "training",
          "curve_type": "single" | "double",
          "designed_curves": [                             # what the generator was asked to draw (coronal)
            {"apex": "T8", "upper_end": "T5", "lower_end": "T11", "cobb_deg": 41.2,
             "convexity": "right", "flexibility": 0.43}],
          "flexibility": {
            "parameter": 0.52,                             # per-patient flexibility, 0 rigid .. 1 flexible
            "curves": [                                    # one per measured coronal curve, clinical definition:
              {"upper_end", "lower_end", "apex", "convexity", "region",      # Cobb on the bending views between
               "coronal_cobb_deg", "left_bending_cobb_deg", "right_bending_cobb_deg",  # the coronal end vertebrae,
               "bending_towards_convexity": "right_bending",                 # signed (< 0: curve reversed)
               "bending_cobb_deg", "flexibility_index"}]},                  # (coronal - bending) / coronal
          "views": {
            "coronal" | "left_bending" | "right_bending": {
              "image": "images/P0001_coronal.dcm", "label": "labels/P0001_coronal.png",
              "format": "dicom" | "png16" | "png8", "photometric": "MONOCHROME1" | "MONOCHROME2",
              "bits_stored": 8..16, "quality": "high" | "medium" | "low",
              "rows": int, "columns": int, "pixel_spacing": [row_mm, col_mm], "view_position": "AP" | "PA",
              "marker": "R" | "L" | "", "burnt_in_text": str,
              "corners": [[[x, y] x 4] x 17],               # UL, UR, LR, LL of T1..L5, pixels
              "sacrum": [[x, y], ...],                     # sacrum polygon of the mask (S1 endplate to tip)
              "centreline": [[x, y], ...],                 # top of T1 down to the sacral tip
              "curves": [                                  # measured in this view from "corners", top to bottom
                {"cobb_deg", "upper_end", "lower_end", "apex",                # names, e.g. "T5"
                 "upper_end_index", "lower_end_index", "apex_index",          # indices into "vertebrae"
                 "convexity": "right" | "left",                               # patient side
                 "convexity_image": "left" | "right",                         # side in the picture
                 "region": "proximal_thoracic" | "main_thoracic" | "thoracolumbar" | "lumbar"}],
              "major_cobb_deg": float,                     # largest curve, 0 if none >= 5 degrees
              "pelvic_obliquity_deg": float, "t1_offset_mm": float}}}}}

Conventions: pixel coordinates are [x, y] = [column, row], row 0 at the top (head), pixel centres at integers.
Images are displayed radiologically (patient's right on the image left; DICOM PatientOrientation ``L\\F``), so a
curve convex towards the image left is a right curve. Cobb angles are measured from the stored corners: the angle
between the upper endplate (UL->UR) of the upper end vertebra and the lower endplate (LL->LR) of the lower end
vertebra, end vertebrae being the most tilted ones bounding the curve; curves under 5 degrees are not listed.
``left_bending`` means the patient bends to their left (the trunk moves to the image right).

What is modelled and what is not is described in ``bundle/docs/README.md`` (section "Data").
"""

from __future__ import annotations

from r2mf_monai.data.synthetic.anatomy import cobb_between, measure_curves
from r2mf_monai.data.synthetic.preview import read_display, write_preview
from r2mf_monai.data.synthetic.synthesize import generate_patient, split_counts, synthesize_dataset

__all__ = [
    "cobb_between",
    "measure_curves",
    "generate_patient",
    "split_counts",
    "synthesize_dataset",
    "read_display",
    "write_preview",
]
