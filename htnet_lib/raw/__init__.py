"""From raw frames to the release (§3.1 eq. 1-3, §4.1-4.2).

The authors published their preprocessed maps, not the step that makes them. This package makes them from the
licensed databases, in the release's layout, so that everything downstream (`htnet_lib.data` onwards) is unchanged:

- `adapters`: CASME II, SAMM, SMIC-HS and CAS(ME)^3 part A annotations and folders -> one samples table, emotions mapped
  to negative / positive / surprise as Table 1 counts them; bad rows reported, never fatal;
- `apex`: D&C-RoIs apex spotting (eq. 1) for sequences without an apex index (SMIC), flagging those with no motion;
- `flow`: Farneback or TV-L1 flow onset -> apex, optical strain (eq. 3), the 28x28x3 (strain, v, u) map, without the
  methods' false flow on the crop's border;
- `build`: a raw database -> `combined_3_class2_for_optical_flow.csv` + maps + 224x224 apex faces, in parallel, with
  a report of what was skipped and why; `cli`: the `preprocess-raw` command;
- `fields`, `synthetic`: known smooth displacement fields on the release's real faces, and small raw databases in
  each adapter's layout made from them (tests, notebook demo);
- `stats`: the release's map statistics beside ours (which flow method matches; how much the border dominates), the
  apex-spotting error; `bench`: samples per second.

Imports are light (OpenCV, numpy, pandas); MTCNN (torch) loads only when a face has to be detected, scikit-image when
an apex is spotted or a float image converted, openpyxl when an .xlsx sheet is read.
"""
from .adapters import (ADAPTERS, Adapter, RawTable, SampleError, compare_with_release, databases, load_database,
                       register_adapter, restrict_to_release)
from .apex import spot_apex, spot_apex_detail
from .build import BuildReport, build_from_raw, build_release
from .flow import face_pair_to_map, farneback, flow_map, optical_flow, optical_strain, tvl1

__all__ = [
    "ADAPTERS", "Adapter", "DATABASES", "databases", "register_adapter", "RawTable", "SampleError", "load_database",
    "compare_with_release", "restrict_to_release",
    "spot_apex", "spot_apex_detail", "BuildReport", "build_release", "build_from_raw",
    "optical_flow", "farneback", "tvl1", "optical_strain", "flow_map", "face_pair_to_map",
]


def __getattr__(name: str):
    if name == "DATABASES":  # the registry's databases now (`adapters.databases`)
        return databases()
    raise AttributeError(name)
