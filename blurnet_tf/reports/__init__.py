"""Reports: Markdown tables with our numbers beside the paper's."""

# The submodules (importing the package imports none of them).
__all__ = [
    "accuracy_curve",
    "blurnet_tables",
    "collect",
    "defendpp_evidence",
    "defendpp_section",
    "fair_report",
    "fair_verdict",
    "figures",
    "flag_tables",
    "flat_records",
    "format",
    "longtrain_report",
    "models_table",
    "readme_sync",
    "report_figures",
    "report_writer",
    "results_dirs",
    "robustness_adaptive",
    "robustness_report",
    "seed_statistics",
    "tradeoff_analysis",
    "tradeoff_report",
    "what_holds",
]
