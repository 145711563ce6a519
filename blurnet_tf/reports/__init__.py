"""Reports: Markdown tables with our numbers beside the paper's."""
