//! Tables in notebooks: polars `DataFrame`s and small metric tables rendered as HTML.
