"""A meta-test for plugin authors: every public name of ``probed`` is documented, twice.

Each name in ``probed.__all__`` has a docstring of its own (``help(name)`` teaches something:
an option type must not show ``typing.Annotated``'s text, a class not ``object``'s) and appears
in the plugin documentation (docs/plugins.md or plugins/README.md) as ```name```.
"""

from __future__ import annotations

import inspect
import pydoc
import typing
from pathlib import Path

import pytest

import probed

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_DOCS = (ROOT / "docs" / "plugins.md", ROOT / "plugins" / "README.md")
ANNOTATED_DOC = typing.Annotated[int, "x"].__doc__  # what help() shows for an undocumented alias


def own_doc(obj: object) -> str:
    """The docstring ``help(obj)`` would show for ``obj`` itself ("" when it is inherited)."""
    doc = getattr(obj, "__doc__", None) or ""
    instance = not (inspect.isclass(obj) or inspect.isroutine(obj))
    # an instance (an Annotated alias) showing its class's docstring has none of its own;
    # hookimpl is pluggy's marker, whose class docstring is about exactly that object
    if instance and doc == (type(obj).__doc__ or "") and obj is not probed.hookimpl:
        return ""
    if inspect.isclass(obj) and doc == (object.__doc__ or ""):
        return ""
    return doc.strip()


PUBLIC = [name for name in probed.__all__ if name != "__version__"]


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_has_a_docstring_of_its_own(name: str) -> None:
    obj = getattr(probed, name)
    doc = own_doc(obj)
    assert len(doc) >= 20, f"probed.{name} has no docstring of its own (help() shows {doc!r})"
    assert doc != (ANNOTATED_DOC or "").strip()


def test_help_of_an_option_type_is_about_the_option() -> None:
    text = pydoc.render_doc(probed.Regex, renderer=pydoc.plaintext)
    assert "regular expression" in text
    assert "Runtime representation of an annotated type" not in text


@pytest.mark.parametrize("name", probed.__all__)
def test_every_public_name_appears_in_the_plugin_documentation(name: str) -> None:
    docs = "\n".join(page.read_text() for page in PLUGIN_DOCS)
    assert f"`{name}`" in docs, (
        f"probed.{name} is public but neither docs/plugins.md nor plugins/README.md names it "
        f"(as `{name}`)"
    )
