"""Live performance panel: per-layer stacked bars, attention tile heatmap, dispatch
timeline and figures. It only shows: batches of timing events go into a
:class:`~npu_whisper_app.profiling.LiveProfile`; a ~30 Hz timer redraws when it changed.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..profiling import CATEGORIES, LiveProfile

pg.setConfigOptions(antialias=False, background="w", foreground="#222")

# one colour per op category (colour-blind friendly, Okabe–Ito)
CATEGORY_COLORS: dict[str, str] = {
    "conv stem": "#999999",
    "norms": "#F0E442",
    "projections": "#0072B2",
    "attention": "#D55E00",
    "mlp": "#009E73",
    "residual": "#CC79A7",
    "other": "#56B4E9",
}
TICK_MS = 33  # ~30 Hz check for new data
MIN_REDRAW_S = 0.065  # plots redraw at most ~15 times a second (>= 10/s required), only when data changed
FIGURES_EVERY_S = 0.25  # text figures and the op table: 4 times a second is plenty to read


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 × 10^k that is >= ``value`` (axis ranges that change rarely:
    every range change repaints the axes, the costliest part of a pyqtgraph redraw)."""
    if value <= 0:
        return 1.0
    exp = np.floor(np.log10(value))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * 10**exp >= value * (1 - 1e-9):
            return float(m * 10**exp)
    return float(10 ** (exp + 1))


# what each plot shows, said on the plot while it is empty
PLACEHOLDERS: dict[str, str] = {
    "bars": "Time per encoder layer, by op category, appears here when a transcription runs",
    "heatmap": "Attention time per head and 64-row query tile appears here when the encoder runs attention",
    "timeline": "Every dispatch of the window being encoded appears here, one row per device lane, when a transcription runs",
    "ops": "Time and GFLOP/s per op appear here when a transcription runs",
}


class Placeholder(QLabel):
    """Grey centred text over an empty plot or table (covers its whole area, lets the mouse through)."""

    def __init__(self, text: str, over: QWidget) -> None:
        super().__init__(text, over)
        self.setObjectName("placeholder")
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setWordWrap(True)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setStyleSheet("color: #888; background: transparent; padding: 12px;")
        over.installEventFilter(self)
        self.setGeometry(over.rect())

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize and watched is self.parent():
            self.setGeometry(self.parentWidget().rect())
        return False


def layer_label(layer: int, n_blocks: int | None) -> str:
    if layer < 0:
        return "stem"
    if n_blocks is not None and layer >= n_blocks:
        return "post"
    return str(layer)


class PerfPanel(QWidget):
    """Shows where the encoder's time goes, for the window being encoded and the job."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.profile = LiveProfile()
        self._drawn_version = -1
        self._last_draw = 0.0
        self._last_figures = 0.0
        self._figures_version = -1
        self.redraws = 0
        self.batches = 0
        self._shown: dict[str, object] = {}  # what each plot shows now (skip unchanged updates)
        self._job_started = 0.0
        self._audio_done = 0.0
        self._audio_total = 0.0
        self._build()
        self._timer = QTimer(self)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self._tick)
        self._timer.start()

    # -- layout --------------------------------------------------------------------------
    @staticmethod
    def _steady_axes(plot: pg.PlotItem) -> None:
        """Fixed axis sizes and no SI-prefix relabelling: new tick labels then never change
        the layout, which would resize the views and repaint every plot at once."""
        for name, size in (("left", 52), ("bottom", 36)):
            axis = plot.getAxis(name)
            axis.enableAutoSIPrefix(False)
            if name == "left":
                axis.setWidth(size)
            else:
                axis.setHeight(size)

    def _build(self) -> None:
        self.scope = QComboBox()
        self.scope.addItem("Window being encoded", "window")
        self.scope.addItem("Whole job", "job")
        self.scope.setToolTip("Show the window being encoded now, or everything since the job started")
        self.layer = QComboBox()
        self.layer.addItem("All layers", None)
        self.layer.setToolTip("Encoder layer shown in the attention heatmap")
        self.scope.currentIndexChanged.connect(self._force_redraw)
        self.layer.currentIndexChanged.connect(self._force_redraw)

        controls = QHBoxLayout()
        controls.addWidget(QLabel("Show:"))
        controls.addWidget(self.scope)
        controls.addSpacing(12)
        controls.addWidget(QLabel("Heatmap layer:"))
        controls.addWidget(self.layer)
        controls.addStretch(1)
        legend = "  ".join(
            f'<span style="color:{CATEGORY_COLORS[c]}; font-size:14px;">&#9632;</span>&nbsp;{c}' for c in CATEGORIES
        )
        self.legend = QLabel(legend)
        self.legend.setToolTip("Op categories in the bars and the timeline")
        controls.addWidget(self.legend)

        # figures
        self.fig: dict[str, QLabel] = {}
        figures = QGridLayout()
        names = [("device", "Device"), ("model", "Model"), ("rtf", "Real-time factor"),
                 ("windows", "Windows done"), ("per_window", "Time per window"), ("events", "Dispatches")]
        for i, (key, title) in enumerate(names):
            label = QLabel("—")
            label.setObjectName(f"figure_{key}")
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            font = label.font()
            font.setBold(True)
            label.setFont(font)
            label.setMinimumWidth(label.fontMetrics().horizontalAdvance("0000 ms (mean 0000 ms)"))
            cap = QLabel(title + ":")
            figures.addWidget(cap, i // 3, 2 * (i % 3))
            figures.addWidget(label, i // 3, 2 * (i % 3) + 1)
            self.fig[key] = label
        figures.setColumnStretch(1, 1)
        figures.setColumnStretch(3, 1)
        figures.setColumnStretch(5, 1)

        # (1) per-layer stacked bars
        self.bars_plot = pg.PlotWidget()
        self.bars_plot.setObjectName("layer_bars")
        p = self.bars_plot.getPlotItem()
        p.setTitle("Time per layer by op category")
        p.setLabel("left", "ms")
        p.setLabel("bottom", "encoder layer")
        p.setMouseEnabled(x=False, y=False)
        p.hideButtons()
        p.disableAutoRange()
        self._steady_axes(p)
        self.bar_items: dict[str, pg.BarGraphItem] = {}
        for cat in CATEGORIES:
            item = pg.BarGraphItem(x=[], height=[], y0=[], width=0.7, brush=CATEGORY_COLORS[cat], pen=None)
            p.addItem(item)
            self.bar_items[cat] = item

        # (2) heatmap head x query tile
        self.heat_plot = pg.PlotWidget()
        self.heat_plot.setObjectName("tile_heatmap")
        hp = self.heat_plot.getPlotItem()
        hp.setTitle("Attention tile time (µs), head × query tile")
        hp.setLabel("left", "head")
        hp.setLabel("bottom", "query tile (64 rows)")
        hp.setMouseEnabled(x=False, y=False)
        hp.hideButtons()
        hp.disableAutoRange()
        self._steady_axes(hp)
        self.heat_image = pg.ImageItem(axisOrder="row-major")
        hp.addItem(self.heat_image)
        self.heat_bar = pg.ColorBarItem(values=(0, 1), colorMap=pg.colormap.get("viridis"), interactive=False, width=12)
        self.heat_bar.setImageItem(self.heat_image, insert_in=hp)
        self.heat_bar.getAxis("right").setWidth(52)
        self.heat_bar.getAxis("right").enableAutoSIPrefix(False)

        # (3) timeline of dispatches
        self.time_plot = pg.PlotWidget()
        self.time_plot.setObjectName("timeline")
        tp = self.time_plot.getPlotItem()
        tp.setTitle("Dispatch timeline of the window being encoded")
        tp.setLabel("bottom", "ms since window start")
        tp.hideButtons()
        tp.setMouseEnabled(y=False)
        tp.disableAutoRange()
        self._steady_axes(tp)
        # one item per category, all its dispatches drawn as rectangles in one call
        self.time_bars: dict[str, pg.BarGraphItem] = {}
        for cat in CATEGORIES:
            item = pg.BarGraphItem(x0=[], x1=[], y0=[], height=[], brush=CATEGORY_COLORS[cat], pen=None)
            tp.addItem(item)
            self.time_bars[cat] = item

        # (4) GFLOP/s by op
        self.op_table = QTableWidget(0, 3)
        self.op_table.setObjectName("op_table")
        self.op_table.setHorizontalHeaderLabels(["op", "ms", "GFLOP/s"])
        self.op_table.verticalHeader().setVisible(False)
        self.op_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.op_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.op_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.op_table.setToolTip("Time and achieved GFLOP/s per op, whole job")
        self.op_table.setMinimumWidth(200)

        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(self.bars_plot)
        top.addWidget(self.heat_plot)
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self.time_plot)
        bottom.addWidget(self.op_table)
        bottom.setStretchFactor(0, 3)
        bottom.setStretchFactor(1, 1)
        plots = QSplitter(Qt.Orientation.Vertical)
        plots.addWidget(top)
        plots.addWidget(bottom)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(controls)
        layout.addLayout(figures)
        layout.addWidget(plots, 1)

        over = {"bars": self.bars_plot, "heatmap": self.heat_plot, "timeline": self.time_plot, "ops": self.op_table.viewport()}
        self.placeholders: dict[str, Placeholder] = {key: Placeholder(PLACEHOLDERS[key], w) for key, w in over.items()}
        self._empty: dict[str, bool] = {}
        for key in over:
            self._set_empty(key, True)

    def _set_empty(self, key: str, empty: bool) -> None:
        """Show the placeholder of plot ``key`` instead of bare axes while it has no data."""
        if self._empty.get(key) == empty:
            return
        self._empty[key] = empty
        self.placeholders[key].setVisible(empty)
        if key != "ops":
            plot = {"bars": self.bars_plot, "heatmap": self.heat_plot, "timeline": self.time_plot}[key].getPlotItem()
            for name in ("left", "bottom"):
                plot.showAxis(name, not empty)
            if key == "heatmap":
                self.heat_bar.setVisible(not empty)

    # -- data in -------------------------------------------------------------------------
    def reset(self, device: str = "", model: str = "") -> None:
        """A new job starts: clear the plots."""
        self.profile.reset()
        self._shown.clear()
        self._drawn_version = -1
        self._job_started = time.monotonic()
        self._audio_done = self._audio_total = 0.0
        if device:
            self.fig["device"].setText(device)
        if model:
            self.fig["model"].setText(model)
        self._force_redraw()

    def set_engine(self, device: str, model: str) -> None:
        self.fig["device"].setText(device)
        self.fig["model"].setText(model)

    def add_timings(self, batch: list) -> None:
        """Store a batch (GUI thread); drawing happens on the timer."""
        self.batches += 1
        self.profile.add(batch)

    def set_progress(self, done_s: float, total_s: float) -> None:
        self._audio_done, self._audio_total = done_s, total_s
        self._update_rtf()

    def set_final(self, realtime_factor: float) -> None:
        self.fig["rtf"].setText(f"{realtime_factor:.2f}× real time")

    def _update_rtf(self) -> None:
        elapsed = time.monotonic() - self._job_started
        if elapsed > 0 and self._audio_done > 0:
            self.fig["rtf"].setText(f"{self._audio_done / elapsed:.2f}× real time")

    # -- drawing -------------------------------------------------------------------------
    def _force_redraw(self) -> None:
        self._drawn_version = -1
        self._figures_version = -1
        self._last_draw = 0.0
        self._last_figures = 0.0

    def _tick(self) -> None:
        """Redraw the plots when new data came (at most every MIN_REDRAW_S), figures less often.
        Nothing is drawn while the panel is hidden."""
        if not self.isVisible():
            return
        now = time.monotonic()
        if self.profile.version != self._drawn_version and now - self._last_draw >= MIN_REDRAW_S:
            self._drawn_version = self.profile.version
            self._last_draw = now
            self.redraws += 1
            self._draw_bars()
            self._draw_heatmap()
            self._draw_timeline()
        if self.profile.version != self._figures_version and now - self._last_figures >= FIGURES_EVERY_S:
            self._figures_version = self.profile.version
            self._last_figures = now
            self._draw_figures()

    @property
    def pending(self) -> bool:
        """True while data came that is not drawn yet."""
        return self.profile.version != self._drawn_version or self.profile.version != self._figures_version

    def redraw(self) -> None:
        """Draw everything now."""
        self._drawn_version = self._figures_version = self.profile.version
        self._draw_bars()
        self._draw_heatmap()
        self._draw_timeline()
        self._draw_figures()

    def _scope(self) -> str:
        return self.scope.currentData() or "window"

    def _changed(self, key: str, value: object) -> bool:
        """Remember ``value`` under ``key``; True if it differs from the last one."""
        old = self._shown.get(key)
        if isinstance(value, np.ndarray) or isinstance(old, np.ndarray):
            same = isinstance(value, np.ndarray) and isinstance(old, np.ndarray) and value.shape == old.shape and np.array_equal(value, old)
        else:
            same = old == value
        if same:
            return False
        self._shown[key] = value
        return True

    def _draw_bars(self) -> None:
        layers, m = self.profile.layer_matrix(self._scope())
        changed = self._changed("bars", m) | self._changed("bar_layers", tuple(layers))
        if not changed:
            return
        self._set_empty("bars", not layers)
        attn = self.profile.attention_layers()
        n_blocks = max(attn) + 1 if attn else None  # layers past the blocks are ln_post
        x = np.arange(len(layers), dtype=float)
        bottom = np.zeros(len(layers))
        for c, cat in enumerate(CATEGORIES):
            h = m[:, c] if len(layers) else np.zeros(0)
            self.bar_items[cat].setOpts(x=x, height=h, y0=bottom.copy(), width=0.7)
            bottom = bottom + h
        ticks = [(i, layer_label(layer, n_blocks)) for i, layer in enumerate(layers)]
        if self._changed("bar_ticks", ticks):
            self.bars_plot.getPlotItem().getAxis("bottom").setTicks([ticks])
        if len(layers):
            if self._changed("bar_x", len(layers)):
                self.bars_plot.setXRange(-0.6, len(layers) - 0.4, padding=0)
            top = nice_ceiling(float(bottom.max()) * 1.05)
            if self._changed("bar_y", top):
                self.bars_plot.setYRange(0, top, padding=0)

    def _sync_layers(self) -> None:
        layers = self.profile.attention_layers()
        if self.layer.count() - 1 != len(layers):
            current = self.layer.currentData()
            self.layer.blockSignals(True)
            self.layer.clear()
            self.layer.addItem("All layers", None)
            for layer in layers:
                self.layer.addItem(f"Layer {layer}", layer)
            idx = self.layer.findData(current) if current is not None else 0
            self.layer.setCurrentIndex(max(idx, 0))
            self.layer.blockSignals(False)

    def _draw_heatmap(self) -> None:
        self._sync_layers()
        m = self.profile.tile_matrix(self._scope(), self.layer.currentData()) * 1000.0  # µs
        if not self._changed("heat", m):
            return
        self._set_empty("heatmap", m.size == 0)
        if m.size == 0:
            self.heat_image.clear()
            self._shown.pop("heat_shape", None)
            return
        hi = nice_ceiling(float(m.max()))
        self.heat_image.setImage(m, autoLevels=False, levels=(0.0, hi))
        if self._changed("heat_levels", hi):
            self.heat_bar.setLevels((0.0, hi))
        if self._changed("heat_shape", m.shape):
            self.heat_image.setRect(0, 0, m.shape[1], m.shape[0])
            self.heat_plot.setXRange(0, m.shape[1], padding=0)
            self.heat_plot.setYRange(0, m.shape[0], padding=0)

    def _draw_timeline(self) -> None:
        lanes, per_cat, end = self.profile.timeline_arrays()
        for cat, item in self.time_bars.items():
            data = per_cat.get(cat)
            n = 0 if data is None else len(data[0])
            if not self._changed(f"tl_{cat}", (n, self.profile.window)):
                continue
            if data is None:
                item.setOpts(x0=[], x1=[], y0=[], height=[])
            else:
                x0, x1, row = data
                item.setOpts(x0=x0, x1=x1, y0=row - 0.35, height=0.7)
        if self._changed("tl_lanes", tuple(lanes)):
            self._set_empty("timeline", not lanes)
            self.time_plot.getPlotItem().getAxis("left").setTicks([list(enumerate(lanes))])
            if lanes:
                self.time_plot.setYRange(-0.7, len(lanes) - 0.3, padding=0)
        if lanes and self._changed("tl_x", (nice_ceiling(end), self.profile.window)):
            self.time_plot.setXRange(0, nice_ceiling(end), padding=0)

    def _set_text(self, label: QLabel, text: str) -> None:
        if label.text() != text:
            label.setText(text)

    def _draw_figures(self) -> None:
        wins = self.profile.window_ms()
        self._set_text(self.fig["windows"], str(len(wins)))
        if wins:
            vals = list(wins.values())
            self._set_text(self.fig["per_window"], f"{vals[-1]:.0f} ms (mean {np.mean(vals):.0f} ms)")
        self._set_text(self.fig["events"], f"{self.profile.n_events:,}")
        if self.profile.devices and self.fig["device"].text() in ("—", ""):
            self.fig["device"].setText(", ".join(sorted(self.profile.devices - {"host"})))
        self._update_rtf()
        rows = self.profile.op_rates()
        if self.op_table.rowCount() != len(rows):
            self.op_table.setRowCount(len(rows))
        self._set_empty("ops", not rows)
        for r, (op, ms, gf) in enumerate(rows):
            for c, text in enumerate((op, f"{ms:.1f}", f"{gf:.1f}")):
                item = self.op_table.item(r, c)
                if item is None:
                    item = QTableWidgetItem()
                    if c:
                        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                    self.op_table.setItem(r, c, item)
                if item.text() != text:
                    item.setText(text)

    # -- export --------------------------------------------------------------------------
    def save_png(self, path: str | Path) -> bool:
        """A PNG of the whole panel as shown."""
        self.redraw()
        return self.grab().save(str(path), "PNG")

    # -- test/introspection helpers -------------------------------------------------------
    def plot_data(self) -> dict[str, int]:
        """How many data points each plot holds (for tests)."""
        bars = sum(len(item.opts.get("height", [])) for item in self.bar_items.values())
        img = self.heat_image.image
        timeline = sum(len(item.opts.get("x0", [])) for item in self.time_bars.values())
        return {"bars": bars, "heatmap": 0 if img is None else int(img.size), "timeline": timeline, "ops": self.op_table.rowCount()}
