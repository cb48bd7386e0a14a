"""Denoise files…: apply the current model to files or a folder, results into a folder.

The denoise panel's **Denoise files…** button docks this panel beside the widget. It lists the
inputs (files, folders, zarr stores), an output folder and a few options; **Denoise files**
runs :func:`napari_gr2r.engine.denoise_files` in a napari thread worker and turns its per-file
events into the panel's two progress bars, a line per file and a cancelable progress bar in
napari's activity dock. Results can be opened as layers as they are written.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from napari.utils import cancelable_progress
from napari.utils.notifications import show_warning
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_gr2r import engine
from napari_gr2r.engine.batch import run as engine_files

from ._jobs import Job, Refused
from ._results import open_result_file, opened_file
from ._state import ERROR_STYLE, Panel, WidgetState

FORMATS = {"like the input": None, "TIFF (.tif)": "tif", "zarr (.zarr)": "zarr"}


def run_files(model: engine.GR2RModel, inputs: list[str], out_dir: str, *, device: str,
              should_stop: Callable[[], bool], **options: Any) -> Iterator[Any]:
    """Run :func:`~napari_gr2r.engine.denoise_files` (in a worker), yielding its events.

    Returns a :class:`Refused` when the run cannot start (no image files, an output that is
    a file), with the engine's message.
    """
    try:
        yield from engine_files.denoise_files(model, inputs, out_dir, device=device,
                                              should_stop=should_stop, **options)
    except engine.GR2RError as exc:
        return Refused(str(exc))
    return None


class FilesPanel(Panel):
    """Pick files or a folder and an output folder; denoise them all with the current model.

    The state gives the model (the widget's current one), the device (the settings') and
    whether training is running (then the model is not used until it ends); results are
    opened as layers of the state's viewer.
    """

    def __init__(self, state: WidgetState, parent: QWidget | None = None) -> None:
        super().__init__(state, parent)
        self._pbar: Any = None
        self._ended = 0
        self._queue: deque[Any] = deque()
        self._handling = False
        self.opened: list[Any] = []
        """Layers opened from results in this panel."""
        self._build()
        state.busy_changed.connect(self._update_buttons)
        state.model_changed.connect(self._update_buttons)
        self._update_buttons()

    # ==================================================================== construction
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        intro = QLabel("Apply the current model to image files (TIFF, OME-TIFF, zarr, PNG, "
                       "JPEG) or to every image in a folder; each result is named after its "
                       "input. Results already in the output folder are skipped.")
        intro.setWordWrap(True)
        layout.addWidget(intro)

        self.inputs = QListWidget()
        self.inputs.setToolTip("Files, folders (their image files) and zarr stores to denoise.")
        self.inputs.setMinimumHeight(80)
        layout.addWidget(self.inputs, 1)
        row = QHBoxLayout()
        self.add_files_button = QPushButton("Add files…")
        self.add_files_button.clicked.connect(self._on_add_files)
        self.add_folder_button = QPushButton("Add folder…")
        self.add_folder_button.clicked.connect(self._on_add_folder)
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(self._on_clear)
        for button in (self.add_files_button, self.add_folder_button, self.clear_button):
            row.addWidget(button)
        layout.addLayout(row)

        form = QFormLayout()
        out_row = QHBoxLayout()
        self.output_edit = QLineEdit()
        self.output_edit.setPlaceholderText("output folder (created if missing)")
        self.output_edit.textChanged.connect(self._update_buttons)
        self.output_button = QPushButton("Choose…")
        self.output_button.clicked.connect(self._on_choose_output)
        out_row.addWidget(self.output_edit, 1)
        out_row.addWidget(self.output_button)
        form.addRow("Output", out_row)
        self.format_combo = QComboBox()
        self.format_combo.addItems(list(FORMATS))
        self.format_combo.setToolTip("like the input: zarr in, zarr out; other inputs give TIFF.")
        form.addRow("Format", self.format_combo)
        self.suffix_edit = QLineEdit()
        self.suffix_edit.setPlaceholderText("none")
        self.suffix_edit.setToolTip("Added to each result's name, e.g. _denoised.")
        form.addRow("Name suffix", self.suffix_edit)
        layout.addLayout(form)
        self.overwrite = QCheckBox("Replace results already in the output folder")
        layout.addWidget(self.overwrite)
        self.open_results = QCheckBox("Open the results as layers")
        self.open_results.setChecked(True)
        layout.addWidget(self.open_results)

        buttons = QGridLayout()
        self.run_button = QPushButton("Denoise files")
        self.run_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop after the current block; finished results are kept.")
        self.stop_button.clicked.connect(self.stop)
        buttons.addWidget(self.run_button, 0, 0)
        buttons.addWidget(self.stop_button, 0, 1)
        layout.addLayout(buttons)

        self.files_progress = QProgressBar()
        self.files_progress.setFormat("idle")
        self.files_progress.setTextVisible(True)
        layout.addWidget(self.files_progress)
        self.file_progress = QProgressBar()
        self.file_progress.setFormat("")
        self.file_progress.setTextVisible(True)
        layout.addWidget(self.file_progress)
        self.log = QListWidget()
        self.log.setToolTip("One line per file: done, skipped, or why it failed.")
        layout.addWidget(self.log, 1)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.message)

    # ==================================================================== inputs
    def add_paths(self, paths: list[str]) -> None:
        """Add inputs (files, folders, zarr stores, glob patterns) to the list."""
        present = {self.inputs.item(i).text() for i in range(self.inputs.count())}
        for path in paths:
            if path and str(path) not in present:
                self.inputs.addItem(str(path))
                present.add(str(path))
        self._update_buttons()

    def input_paths(self) -> list[str]:
        return [self.inputs.item(i).text() for i in range(self.inputs.count())]

    def set_output(self, folder: str) -> None:
        self.output_edit.setText(str(folder))

    def _on_add_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(
            self, "Images to denoise", "",
            "Images (*.tif *.tiff *.png *.jpg *.jpeg);;All files (*)")
        self.add_paths(paths)

    def _on_add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of images (or a zarr store)")
        if folder:
            self.add_paths([folder])

    def _on_clear(self) -> None:
        self.inputs.clear()
        self._update_buttons()

    def _on_choose_output(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the results")
        if folder:
            self.set_output(folder)

    # ==================================================================== state
    @property
    def running(self) -> bool:
        return self.state.job("files") is not None

    def _update_buttons(self, *_: Any) -> None:
        running = self.running
        ready = bool(self.input_paths()) and bool(self.output_edit.text().strip())
        usable = self.state.model is not None and not self.state.training
        self.run_button.setEnabled(not running and ready and usable)
        self.stop_button.setEnabled(running)
        for widget in (self.add_files_button, self.add_folder_button, self.clear_button,
                       self.output_button, self.output_edit, self.overwrite,
                       self.format_combo, self.suffix_edit):
            widget.setEnabled(not running)

    def _show(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet(ERROR_STYLE if error else "")
        if error:
            show_warning(text)

    # ==================================================================== running
    def start(self) -> None:
        """Denoise the listed inputs into the output folder, in a worker."""
        if self.running:
            return
        model = self.state.model
        if model is None or self.state.training:
            self._show("No model: train one or load one first." if model is None else
                       "Training is running: denoise the files when it has ended.", error=True)
            return
        out_dir = self.output_edit.text().strip()
        if not out_dir or not self.input_paths():
            self._show("Add files or a folder, and choose an output folder.", error=True)
            return
        try:
            paths = engine_files.expand_inputs(self.input_paths())
        except engine.GR2RError as exc:
            self._show(str(exc), error=True)
            return
        if not paths:
            self._show("The folders given hold no image files.", error=True)
            return
        self.log.clear()
        self._ended = 0
        self.opened = []
        self.files_progress.setRange(0, len(paths))
        self.files_progress.setValue(0)
        self.files_progress.setFormat(f"files 0/{len(paths)}")
        self._pbar = cancelable_progress(total=len(paths), desc="GR2R: denoising files")
        self.file_progress.setRange(0, 1)
        self.file_progress.setValue(0)
        self.file_progress.setFormat("")
        self._show(f"Denoising into {out_dir}…")
        job, pbar = Job("files"), self._pbar

        def stop_requested() -> bool:
            # this run's own job and bar: a closing widget forgets its jobs while an
            # abandoned run still polls its flag
            return job.should_stop() or pbar.is_canceled

        self.state.run_job(
            job, run_files, model, paths, out_dir,
            device=self.state.settings.device_id(), should_stop=stop_requested,
            overwrite=self.overwrite.isChecked(), out_format=FORMATS[self.format_combo.currentText()],
            suffix=self.suffix_edit.text().strip(), yielded=self._on_event,
            returned=self._on_returned, errored=self._on_errored, finished=self._on_finished)

    def stop(self) -> None:
        job = self.state.job("files")
        if job is not None:
            job.request_stop()
            self._show("Stopping after the current block; finished results are kept…")

    def _on_event(self, event: Any) -> None:
        # Adding a layer can run Qt's event loop, which would deliver the worker's next
        # events inside this handler; a queue keeps them in order.
        self._queue.append(event)
        if self._handling:
            return
        self._handling = True
        try:
            while self._queue:
                self._handle(self._queue.popleft())
        finally:
            self._handling = False

    def _handle(self, event: Any) -> None:
        F = engine_files
        if isinstance(event, F.FileStarted):
            self.file_progress.setRange(0, 0)
            self.file_progress.setFormat(f"{Path(event.path).name}: reading…")
        elif isinstance(event, F.FileProgress):
            self.file_progress.setRange(0, max(event.total, 1))
            self.file_progress.setValue(event.done)
            self.file_progress.setFormat(
                f"{Path(event.path).name}: {event.unit} {event.done}/{event.total}")
        elif isinstance(event, (F.FileDone, F.FileSkipped, F.FileFailed)):
            self._file_ended(event)
        elif isinstance(event, F.FilesFinished):
            self._all_done(event)

    def _file_ended(self, event: Any) -> None:
        F = engine_files
        name = Path(event.path).name
        if isinstance(event, F.FileDone):
            self.log.addItem(f"✓ {name} → {Path(event.output).name} ({event.seconds:.1f} s)")
            if event.warning is not None:  # the result is there, and may be wrong
                self.log.addItem(f"  ⚠ {event.warning}")
                self.log.item(self.log.count() - 1).setToolTip(event.warning)
            if self.open_results.isChecked():
                self._open_result(event.output)
        elif isinstance(event, F.FileSkipped):
            self.log.addItem(f"– {name}: {event.reason}")
            if self.open_results.isChecked():
                self._open_result(event.output, skipped=True)
        else:
            self.log.addItem(f"✗ {name}: {event.reason}")
        self.log.scrollToBottom()
        self._ended += 1
        self.files_progress.setValue(self._ended)
        self.files_progress.setFormat(f"files {self._ended}/{event.n_files}")
        self.file_progress.setRange(0, 1)
        self.file_progress.setValue(1)
        self.file_progress.setFormat(f"{name}: done" if isinstance(event, F.FileDone) else "")
        if self._pbar is not None:
            self._pbar.update(1)

    def _all_done(self, event: Any) -> None:
        parts = [f"{event.done} denoised"]
        if event.skipped:
            parts.append(f"{event.skipped} already done")
        if event.failed:
            parts.append(f"{len(event.failed)} failed")
        if event.warned:
            parts.append(f"{len(event.warned)} may be wrong")
        summary = ", ".join(parts)
        if event.stopped:
            self.files_progress.setFormat("stopped")
            self._show(f"Stopped: {summary}. Run it again to do the rest.",
                       error=bool(event.warned))
        elif event.failed or event.warned:
            self.files_progress.setFormat("done, with failures" if event.failed else
                                          "done, with warnings")
            failed = ", ".join(Path(p).name for p, _ in event.failed)
            warned = ", ".join(Path(p).name for p in event.warned)
            why = "; ".join(([f"failed: {failed}"] if failed else []) +
                            ([f"values outside the model's training range: {warned}"]
                             if warned else []))
            self._show(f"{summary} ({why}; see the list).", error=True)
        else:
            self.files_progress.setFormat("done")
            self._show(f"{summary}, in {event.elapsed_s:.1f} s.")

    def _open_result(self, output: str, skipped: bool = False) -> None:
        """Open a result as layers (zarr lazily), with its pixel size and units; a skipped
        result that is already open stays as it is."""
        if skipped and opened_file(self.viewer, output):
            return
        try:
            layers = open_result_file(self.viewer, output)
        except engine.GR2RError as exc:
            self.log.addItem(f"  could not open {Path(output).name}: {exc}")
            return
        self.opened.extend(layers)

    def _on_returned(self, result: Any) -> None:
        if isinstance(result, Refused):
            self.files_progress.setRange(0, 1)
            self.files_progress.setFormat("idle")
            self._show(result.message, error=True)

    def _on_errored(self, exc: BaseException) -> None:
        self._show(f"Denoising the files failed: {exc}", error=True)

    def _on_finished(self) -> None:
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self._update_buttons()

    def closeEvent(self, event: Any) -> None:
        self.stop()
        super().closeEvent(event)
