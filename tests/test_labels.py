import pytest

from artstyle import normalize_label
from artstyle.data.labels import normalize_artist


@pytest.mark.parametrize(
    "folder, label",
    [
        ("01_Byzantin_Iconography", "byzantine iconography"),
        ("byzantine_iconography", "byzantine iconography"),
        ("16_AbstractArt", "abstract art"),
        ("18_PopArt", "pop art"),
        ("pop_art", "pop art"),
        ("Pop Art", "pop art"),
        ("pop-art", "pop art"),
        ("POP ART", "pop art"),
        ("10_Post_Impressionism", "post impressionism"),
        ("Post-Impressionism", "post impressionism"),
        ("03_Northern_Renaissance", "northern renaissance"),
        ("17_NaiveArt", "naive art"),
        ("Naïve art", "naive art"),
        ("15_Surrealism", "surrealism"),
    ],
)
def test_folder_names_normalise_to_one_label(folder, label):
    assert normalize_label(folder) == label


def test_artist_identity_ignores_case_and_separators():
    assert normalize_artist("Salvador dali") == normalize_artist("Salvador_Dali") == "salvador dali"
    assert normalize_artist("Picasso_Pablo") != normalize_artist("Salvador_Dali")
