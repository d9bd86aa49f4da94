"""Google Takeout sidecar matching and reading, as plain functions.

The naming cases are immich-go's published test table (github.com/simulot/immich-go,
``adapters/googlePhotos/matcher_test.go``, commit 2e5607a), each with the issue it came from where it
names one: they record what real Takeout exports contain, not guesses.
"""

from __future__ import annotations

import pytest

from pipeline.sources.takeout import (
    file_index,
    is_takeout,
    match_edited,
    match_fast_track,
    match_forgotten_duplicate,
    match_normal,
    match_sidecars,
    sidecar_fields,
)

MATCHERS = [
    ("fast_track", match_fast_track),
    ("normal", match_normal),
    ("forgotten_duplicate", match_forgotten_duplicate),
    ("edited", match_edited),
]

# (json name, file name, the first matcher that pairs them, "" for none) -- immich-go's table.
CASES = [
    ("PXL_20211013_220651983.jpg.json", "PXL_20211013_220651983.jpg", "fast_track"),
    ("PXL_20211013_220651983.jpg.json", "PXL_20211013_220651958.jpg", ""),
    ("PXL_20220405_090123740.PORTRAIT.jpg.json", "PXL_20220405_090123740.PORTRAIT-modifié.jpg", "edited"),
    ("PXL_20220405_090123740.PORTRAIT.jpg.json", "PXL_20220405_090123741.PORTRAIT-modifié.jpg", ""),
    ("DSC_0100.JPG.json", "DSC_0100.JPG", "fast_track"),
    ("DSC_0101.JPG(1).json", "DSC_0101(1).JPG", "normal"),
    ("DSC_0102.JPG(2).json", "DSC_0102(1).JPG", ""),
    ("DSC_0103.JPG(1).json", "DSC_0103.JPG", ""),
    ("DSC_0104.JPG.json", "DSC_0104(1).JPG", ""),
    ("IMG_2710.HEIC(1).json", "IMG_2710(1).HEIC", "normal"),
    ("PXL_20231118_035751175.MP.jpg.json", "PXL_20231118_035751175.MP.jpg", "fast_track"),
    (
        "PXL_20230809_203449253.LONG_EXPOSURE-02.ORIGIN.json",
        "PXL_20230809_203449253.LONG_EXPOSURE-02.ORIGINA.jpg",
        "normal",
    ),
    (
        "05yqt21kruxwwlhhgrwrdyb6chhwszi9bqmzu16w0 2.jp.json",
        "05yqt21kruxwwlhhgrwrdyb6chhwszi9bqmzu16w0 2.jpg",
        "normal",
    ),
    (
        "😀😃😄😁😆😅😂🤣🥲☺️😊😇🙂🙃😉😌😍🥰😘😗😙😚😋.json",
        "😀😃😄😁😆😅😂🤣🥲☺️😊😇🙂🙃😉😌😍🥰😘😗😙😚😋😛.jpg",
        "normal",
    ),
    (
        "Backyard_ceremony_wedding_photography_xxxxxxx_(494).json",
        "Backyard_ceremony_wedding_photography_xxxxxxx_m(494).jpg",
        "normal",
    ),
    (
        "Backyard_ceremony_wedding_photography_xxxxxxx_(494).json",
        "Backyard_ceremony_wedding_photography_xxxxxxx_m(185).jpg",
        "",
    ),
    (
        "original_1d4caa6f-16c6-4c3d-901b-9387de10e528_.json",
        "original_1d4caa6f-16c6-4c3d-901b-9387de10e528_P.jpg",
        "normal",
    ),
    (
        "original_1d4caa6f-16c6-4c3d-901b-9387de10e528_.json",
        "original_1d4caa6f-16c6-4c3d-901b-9387de10e528_P(1).jpg",
        "forgotten_duplicate",
    ),
    ("PXL_20210102_221126856.MP~2.jpg.json", "PXL_20210102_221126856.MP~2.jpg", "fast_track"),  # #405
    (  # #613
        "13039_327707840323_537645323_9470255_27214_n.j(1).json",
        "13039_327707840323_537645323_9470255_27214_n(1).jpg",
        "normal",
    ),
    # #652: supplemental-metadata sidecars, whole and cut
    ("20161105_170829.jpg.supplemental-metadata.json", "20161105_170829.jpg", "normal"),
    (
        "Screenshot_20231027_123303_Facebook.jpg.supple.json",
        "Screenshot_20231027_123303_Facebook.jpg",
        "normal",
    ),
    (
        "Screenshot_20231027_123303_Facebook.jpg.supple(1).json",
        "Screenshot_20231027_123303_Facebook(1).jpg",
        "normal",
    ),
    ("MVIMG_20191230_232926.jpg.supplemental-metadat.json", "MVIMG_20191230_232926.jpg", "normal"),
    ("Screenshot_20200301-161151.png.supplemental-me.json", "Screenshot_20200301-161151.png", "normal"),
    ("MVIMG_20200207_134534~2.jpg.supplemental-metad.json", "MVIMG_20200207_134534~2.jpg", "normal"),
    # #673: the index after supplemental-metadata
    ("Scan35.jpg.supplemental-metadata(1).json", "Scan35(1).jpg", "normal"),
    ("CLIP0001.AVI.supplemental-metadata(10).json", "CLIP0001(10).AVI", "normal"),
    # #698, #674, #652: edited copies use their original's sidecar
    ("IMAG0061.JPG.supplemental-metadata.json", "IMAG0061-edited.JPG", "edited"),
    ("IMG-20230325-WA0122~2.jpg.supplemental-metadat.json", "IMG-20230325-WA0122~2-edited.jpg", "edited"),
    ("2234089303984509579.supplemental-metadata.json", "2234089303984509579-edited.jpg", "edited"),
    (
        "Screenshot_20231027_123303_Facebook.jpg.supple.json",
        "Screenshot_20231027_123303_Facebook-edited.jpg",
        "edited",
    ),
    (
        "Screenshot_2024-08-31-00-53-48-647_com.snapcha.json",
        "Screenshot_2024-08-31-00-53-48-647_com.snapchat.jpg",
        "normal",
    ),
]


@pytest.mark.parametrize(("json_name", "file_name", "want"), CASES)
def test_each_takeout_naming_case_is_matched_by_the_rule_immich_go_uses(
    json_name: str, file_name: str, want: str
) -> None:
    first = next((name for name, fn in MATCHERS if fn(json_name, file_name)), "")
    assert first == want


LONG = "A_very_long_file_name_from_a_phone_camera_app_2019.jpg"


def test_a_folder_is_matched_whole_each_file_to_its_own_sidecar() -> None:
    files = [
        "IMG_0001.jpg",
        "IMG_0001(1).jpg",
        "IMG_0001-edited.jpg",
        "IMG_0002.jpg",
        LONG,
        "no_sidecar.jpg",
    ]
    jsons = [
        "IMG_0001.jpg.json",
        "IMG_0001.jpg(1).json",
        "IMG_0002.jpg.supplemental-metadata.json",
        "A_very_long_file_name_from_a_phone_camera_app_.json",  # cut at 46 characters, then .json
        "metadata.json",  # the album's, not a photo's
    ]
    assert match_sidecars(files, jsons) == {
        "IMG_0001.jpg": "IMG_0001.jpg.json",
        "IMG_0001(1).jpg": "IMG_0001.jpg(1).json",
        "IMG_0001-edited.jpg": "IMG_0001.jpg.json",
        "IMG_0002.jpg": "IMG_0002.jpg.supplemental-metadata.json",
        LONG: "A_very_long_file_name_from_a_phone_camera_app_.json",
    }


def test_the_index_is_taken_from_the_last_brackets_with_digits_only() -> None:
    assert file_index("IMG_0001(1).jpg") == ("IMG_0001.jpg", "1")
    assert file_index("IMG_0001.jpg(12).json") == ("IMG_0001.jpg.json", "12")
    assert file_index("party (Hanoi).jpg") == ("party (Hanoi).jpg", "")


TAKEOUT = {
    "title": "IMG_0001.jpg",
    "description": "Tết at grandma's",
    "imageViews": "3",
    "creationTime": {"timestamp": "1556700000", "formatted": "1 May 2019, 08:40:00 UTC"},
    "photoTakenTime": {"timestamp": "1556699400", "formatted": "1 May 2019, 08:30:00 UTC"},
    "geoData": {"latitude": 21.0285, "longitude": 105.8542, "altitude": 0.0},
    "geoDataExif": {"latitude": 0.0, "longitude": 0.0, "altitude": 0.0},
    "people": [{"name": "Minh"}, {"name": "Lan"}, {"name": "Minh"}],
    "url": "https://photos.google.com/photo/AF1Qip",
    "googlePhotosOrigin": {"mobileUpload": {"deviceType": "ANDROID_PHONE"}},
}


def test_a_takeout_sidecar_gives_people_taken_title_description_and_place() -> None:
    assert is_takeout(TAKEOUT)
    assert sidecar_fields(TAKEOUT) == {
        "title": "IMG_0001.jpg",
        "description": "Tết at grandma's",
        "people": "Lan, Minh",
        "taken": "2019-05-01T08:30:00+00:00",
        "lat": "21.0285",
        "lon": "105.8542",
    }


def test_takeouts_zero_coordinates_mean_unknown_and_bad_values_are_left_out() -> None:
    odd = {"photoTakenTime": {"timestamp": "soon"}, "geoData": {"latitude": 0.0, "longitude": 0.0},
           "people": [{"name": ""}, {"nom": "x"}, 7], "title": ""}  # fmt: skip
    assert sidecar_fields(odd) == {}


def test_a_plain_sidecar_is_not_takeouts_and_gives_its_same_named_keys() -> None:
    plain = {"people": ["Binh", "An"], "taken": "2001-02-03", "keywords": ["tet", "family"]}
    assert not is_takeout(plain)
    assert sidecar_fields(plain) == {"people": "An, Binh", "taken": "2001-02-03", "keywords": "family, tet"}
