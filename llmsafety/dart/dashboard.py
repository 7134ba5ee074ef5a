"""A small live view of a DART run for notebooks: phases done, violation rate, red metrics.

    dash = DARTDashboard(config)
    display(dash.widget)
    result = run_dart(config, "runs/demo", on_phase_end=dash.update)
"""

from __future__ import annotations

import html

from llmsafety.dart.config import DARTConfig
from llmsafety.dart.loop import DARTResult, phase_names


class DARTDashboard:
    def __init__(self, config: DARTConfig):
        import ipywidgets as widgets

        self.config = config
        self.phases = phase_names(config)
        self.status = widgets.HTML()
        self.plot = widgets.Output()
        self.table = widgets.Output()
        self.widget = widgets.VBox([self.status, widgets.HBox([self.plot, self.table])])
        self._render_status([])

    def _render_status(self, completed: list[str], current: str | None = None) -> None:
        marks = []
        for phase in self.phases:
            symbol = "&#10003;" if phase in completed else ("&#9654;" if phase == current else "&middot;")
            marks.append(f"<span style='margin-right:10px'>{symbol} {html.escape(phase)}</span>")
        self.status.value = (f"<b>DART ({html.escape(self.config.variant)})</b> "
                             f"{len(completed)}/{len(self.phases)} phases<br>" + "".join(marks))

    def update(self, phase: str, result: DARTResult) -> None:
        """``on_phase_end`` callback of :func:`run_dart`."""
        import matplotlib.pyplot as plt

        from llmsafety.dart.report import metrics_table, plot_violation

        nxt = next((p for p in self.phases if p not in result.completed), None)
        self._render_status(result.completed, nxt)
        if result.evaluations:
            self.plot.clear_output(wait=True)
            with self.plot:
                fig = plot_violation({self.config.variant: result})
                fig.set_size_inches(5, 3)
                plt.show(fig)
                plt.close(fig)
        self.table.clear_output(wait=True)
        with self.table:
            cols = [c for c in ("iteration", "violation_rate", "over_refusal", "attack_success_rate",
                                "mean_novelty") if c in result.metrics().columns]
            print(metrics_table(result)[cols].to_string(index=False))

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
