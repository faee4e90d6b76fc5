"""Stage 5, the reports: the params schema (:mod:`~mtbc.reports.params`), notebook execution
(:mod:`~mtbc.reports.execute`), HTML pages and the index (:mod:`~mtbc.reports.html`), plots
(:mod:`~mtbc.reports.plots`), the tables notebooks show (:mod:`~mtbc.reports.tables`) and what
a notebook displays for the index (:mod:`~mtbc.reports.display`)."""

#: The public modules (imported on demand: importing the package stays cheap).
__all__ = ["audit", "browser", "display", "execute", "html", "hygiene", "params", "plot_style",
           "plots", "plots_eval", "record", "tables"]
