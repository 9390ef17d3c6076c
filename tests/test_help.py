"""Readable help: the dialog's help text, the parameter tooltips, the Help button and the Toolbox groups.

QGIS 3.22 renders ``shortHelpString()`` as HTML (each line a ``<p>``, under an ``<h2>`` with the
display name) and a parameter's ``toolTip()`` as HTML too, so any ``<…>`` span vanishes; these tests
render both as QGIS does, through ``QTextDocument``, and compare the text that survives with the
source.
"""
import os
import re

import pytest

from surface_motion.algorithms import ALGORITHM_CLASSES
from surface_motion.algorithms import help as help_pages
from surface_motion.algorithms.base import GROUPS

ALGORITHM_NAMES = [cls().name() for cls in ALGORITHM_CLASSES]
MAX_HELP_CHARS = 1500
#: Parameter ids that are also ordinary acronyms of the prose.
ACRONYM_IDS = {"DEM", "CRS", "AOI", "CFL"}
WORKFLOW_ORDER = ["planet", "preparation", "offsettracking", "postprocessing", "itslive", "sentinel1"]


def rendered_text(html: str) -> str:
    """What a Qt rich-text widget shows of ``html``."""
    from qgis.PyQt.QtGui import QTextDocument

    document = QTextDocument()
    document.setHtml(html)
    return document.toPlainText()


def dialog_help_html(display_name: str, text: str) -> str:
    """The HTML QGIS 3.22 builds from a help string (QgsProcessingAlgorithmDialogBase::formatHelp)."""
    return f"<h2>{display_name}</h2>" + "".join(f"<p>{line}</p>" for line in text.split("\n"))


def normalised(text: str) -> str:
    return " ".join(text.split())


def lost_words(source: str, shown: str) -> list:
    """Words of ``source`` that are missing from ``shown``, in order, with repeats counted."""
    remaining = shown.split()
    lost = []
    for word in source.split():
        if word in remaining:
            remaining.remove(word)
        else:
            lost.append(word)
    return lost


@pytest.fixture(scope="module")
def algorithms(provider):
    return {name: provider.algorithm(name) for name in ALGORITHM_NAMES}


def test_the_rendering_check_catches_angle_bracket_placeholders(qgis_app):
    """The check below is meaningful: the issue's two failures are caught by it."""
    source = "Files: <stem>.tif\nLayers are kept when START_DATE ≤ mid_date < END_DATE, roi_valid ≥ 10 %."
    shown = rendered_text(dialog_help_html("Example", source))
    assert "<stem>.tif" in lost_words(source, shown)
    assert "END_DATE," in lost_words(source, shown) and "roi_valid" in lost_words(source, shown)


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_help_text_survives_the_dialog_html_rendering(algorithms, name):
    algorithm = algorithms[name]
    text = algorithm.shortHelpString()
    shown = rendered_text(dialog_help_html(algorithm.displayName(), text))
    assert lost_words(text, shown) == []
    assert normalised(shown) == normalised(algorithm.displayName() + " " + text)


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_help_text_is_short_and_states_outputs_and_units(algorithms, name):
    text = algorithms[name].shortHelpString()
    assert 300 <= len(text) <= MAX_HELP_CHARS, len(text)
    assert re.search(r"\boutputs?\b", text, re.IGNORECASE)
    assert re.search(r"\b(px|pixels?|m/yr|1/yr|dB|days?|m|metres|years?|degrees|%|UTC)\b", text)


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_help_text_names_parameters_by_their_labels_not_their_ids(algorithms, name, provider):
    from surface_motion.algorithms.settings import SETTINGS

    algorithm = algorithms[name]
    text = algorithm.shortHelpString()
    definitions = algorithm.parameterDefinitions()
    ids = [d.name() for d in definitions if d.name() not in ACRONYM_IDS]
    assert [i for i in ids if re.search(rf"(?<![\w{{]){re.escape(i)}(?![\w}}])", text)] == []
    # every 'quoted' name is a label of this dialog, another algorithm's title, an option or a setting
    names = ([d.description() for d in definitions] + [a.displayName() for a in provider.algorithms()]
             + [description for _, description, *_ in SETTINGS]
             + [option for d in definitions if hasattr(d, "options") for option in d.options()])
    quoted = re.findall(r"(?<![\w'])'([^']+)'(?![\w'])", text)
    assert [q for q in quoted if not any(n.startswith(q) for n in names)] == []


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_every_parameter_has_a_tooltip_that_renders_whole(algorithms, name):
    algorithm = algorithms[name]
    for definition in algorithm.parameterDefinitions():
        assert definition.help(), definition.name()
        assert len(definition.help()) <= 400, definition.name()
        shown = rendered_text(definition.toolTip())
        for text in (definition.description(), definition.help()):
            assert lost_words(text, shown) == [], definition.name()


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_optional_parameters_do_not_say_optional_twice(algorithms, name):
    from qgis.core import QgsProcessingParameterDefinition

    for definition in algorithms[name].parameterDefinitions():
        if definition.flags() & QgsProcessingParameterDefinition.FlagOptional:
            assert "optional" not in definition.description().lower(), definition.name()  # QGIS adds [optional]


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_help_url_opens_the_readme_section_of_the_algorithm(algorithms, name):
    from qgis.PyQt.QtCore import QUrl

    algorithm = algorithms[name]
    url = QUrl(algorithm.helpUrl())
    assert url.isLocalFile()
    page = url.toLocalFile()
    assert os.path.isfile(page) and page.endswith(f"{name}.html")
    with open(page, encoding="utf-8") as handle:
        html = handle.read()
    title, section = help_pages.algorithm_section(name)
    assert title.endswith(f"(`surfacemotion:{name}`)") and title.startswith(algorithm.displayName())
    assert f'<h1 id="{help_pages.heading_anchor(title)}">' in html
    first_sentence = normalised(section.split("\n\n")[1]).split(". ")[0]
    assert normalised(rendered_text(help_pages.markdown_to_html(first_sentence))) in normalised(rendered_text(html))
    for extra in type(algorithm).HELP_SECTIONS:
        assert f'<h2 id="{help_pages.heading_anchor(extra)}">' in html
    assert len(re.findall("<h1", html)) == 1 and "The whole README" in html


def test_help_url_falls_back_to_the_readme_anchor_when_no_page_can_be_written(monkeypatch, tmp_path, qgis_app):
    from qgis.PyQt.QtCore import QUrl

    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setattr(help_pages, "help_folder", lambda: str(blocked / "help"))
    url = QUrl(help_pages.help_url("correlatepair"))
    assert url.toLocalFile() == help_pages.README_PATH
    assert url.fragment() == "correlate-image-pair-offset-tracking-surfacemotioncorrelatepair"
    assert help_pages.help_url("nosuchalgorithm") == ""


def test_help_page_is_rewritten_when_the_readme_changes(monkeypatch, tmp_path, qgis_app):
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\n#### Tool (`surfacemotion:tool`)\n\nFirst text.\n\n## Next\n\nNot this.\n")
    monkeypatch.setattr(help_pages, "README_PATH", str(readme))
    monkeypatch.setattr(help_pages, "help_folder", lambda: str(tmp_path / "pages"))
    from qgis.PyQt.QtCore import QUrl

    page = QUrl(help_pages.help_url("tool")).toLocalFile()
    assert page == str(tmp_path / "pages" / "tool.html")
    assert "First text." in open(page, encoding="utf-8").read()
    assert "Not this." not in open(page, encoding="utf-8").read()
    readme.write_text(readme.read_text().replace("First text.", "Second text."))
    help_pages.help_url("tool")
    assert "Second text." in open(page, encoding="utf-8").read()


def test_heading_anchors_are_githubs():
    assert help_pages.heading_anchor("Output conventions") == "output-conventions"
    assert help_pages.heading_anchor("ITS_LIVE glacier velocity") == "its_live-glacier-velocity"
    assert (help_pages.heading_anchor("Remove ramp (polynomial fit on stable ground) (`surfacemotion:polyfit`)")
            == "remove-ramp-polynomial-fit-on-stable-ground-surfacemotionpolyfit")


def test_markdown_renderer_on_the_readme_subset(qgis_app):
    text = ("#### A `b` (c)\n\nSome **bold**, *italic*, `x < y` and [a link](#a-b-c), 1 < 2.\n\n"
            "- one\n  continued\n- two\n\n| k | v |\n|---|---|\n| \\|u\\| | `p` |\n\n```\n<raw>\n```\n")
    assert help_pages.markdown_to_html(text, top_level=1) == (
        '<h1 id="a-b-c">A <code>b</code> (c)</h1>\n'
        '<p>Some <b>bold</b>, <i>italic</i>, <code>x &lt; y</code> and <a href="#a-b-c">a link</a>, 1 &lt; 2.</p>\n'
        "<ul><li>one continued</li><li>two</li></ul>\n"
        "<table><thead><tr><th>k</th><th>v</th></tr></thead>"
        "<tbody><tr><td>|u|</td><td><code>p</code></td></tr></tbody></table>\n"
        "<pre><code>&lt;raw&gt;</code></pre>")


def test_every_algorithm_has_a_readme_section_and_the_readme_no_orphan(qgis_app):
    text = help_pages.readme_text()
    sections = re.findall(r"^#### .*\(`surfacemotion:(\w+)`\)$", text, re.MULTILINE)
    assert sorted(sections) == sorted(ALGORITHM_NAMES)


def test_toolbox_groups_sort_in_workflow_order(provider, qgis_app):
    """The Toolbox's own proxy model (the one the Processing Toolbox shows) orders the groups."""
    from qgis.core import QgsApplication
    from qgis.gui import QgsProcessingToolboxProxyModel

    model = QgsProcessingToolboxProxyModel(None, QgsApplication.processingRegistry())
    provider_rows = [model.index(row, 0) for row in range(model.rowCount())]
    ours = [index for index in provider_rows if model.data(index) == provider.name()]
    assert len(ours) == 1
    groups = [model.data(model.index(row, 0, ours[0])) for row in range(model.rowCount(ours[0]))]
    expected = [GROUPS[group_id] for group_id in WORKFLOW_ORDER]
    assert [g for g in groups if g in expected] == expected
    assert {a.groupId() for a in provider.algorithms() if a.name() in ALGORITHM_NAMES} == set(WORKFLOW_ORDER)
