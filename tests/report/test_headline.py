import math

import pandas as pd

from occo.report.collect import Collected
from occo.report.headline import headline


def test_flat_keys_and_absent_values_left_out() -> None:
    fusion = {
        "TNO": pd.DataFrame(
            {"EN": [7.1, 6.0], "SF": [11.0, 9.0], "AG": [4.9, 3.0], "CC": [math.nan, 0.4], "n": [21, 21]},
            index=["occo", "visible"],
        ),
        "M3FD": pd.DataFrame({"EN": [6.5], "SF": [1.0], "AG": [1.0], "CC": [0.5], "n": [3]}, index=["visible"]),
    }
    detect = {
        "MSRS": {
            "occo": {"ap50": {"person": 0.9, "all": 0.8}, "ap50_95": {"all": None}},
            "visible": {"ap50": {"all": 0.7}, "ap50_95": {"all": 0.3}},
        },
        "M3FD": {"visible": {"ap50": {"all": 0.6}, "ap50_95": {"all": 0.3}}},
    }
    segment = {"MSRS": {"occo": {"iou": {"car": 0.9}, "miou": 0.61}}}
    data = Collected(fusion=fusion, detect=detect, segment=segment)
    assert headline(data) == {
        "TNO.EN": 7.1,
        "TNO.SF": 11.0,
        "TNO.AG": 4.9,  # CC undefined: left out
        "MSRS.detect.ap50": 0.8,
        "MSRS.segment.miou": 0.61,  # M3FD: occo not scored
    }
    assert headline(data, "visible")["M3FD.detect.ap50_95"] == 0.3
    assert all(type(v) is float for v in headline(data).values())
