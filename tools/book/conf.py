"""Sphinx's settings for the course's book (`make book`; tools/book/build.py writes the sources).

MyST-NB renders the executed notebooks as they are (nothing is executed here), the book
theme gives the navigation, previous/next links and the page contents, and Sphinx's own
search index makes the search work offline. No page loads anything from the network:
the notebooks have no formulas for MathJax, and the theme's fonts and scripts are bundled.
"""

project = "mustknow"
author = "the mustknow authors"
copyright = "the mustknow authors; datasets as credited in data/README.md"
extensions = ["myst_nb"]

# The sources: the landing page, the chapters and the crate's pages. The stored notebooks
# under _notebooks/ are downloads, not pages.
exclude_patterns = ["_notebooks/**"]
nb_execution_mode = "off"
# A compile error's output is plain text, not an IPython traceback.
nb_render_error_lexer = "text"
myst_heading_anchors = 3
pygments_style = "friendly"

html_theme = "sphinx_book_theme"
html_title = "mustknow"
html_theme_options = {
    "show_toc_level": 2,
    "home_page_in_toc": True,
    "use_download_button": False,
    "use_fullscreen_button": False,
}
html_show_sourcelink = False
html_copy_source = False
html_context = {"default_mode": "light"}
