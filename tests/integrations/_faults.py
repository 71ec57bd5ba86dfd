"""Fault injection for store tests: a TCP proxy that can drop a server, and dropping a database's connections."""

from __future__ import annotations

import socket
import threading

import sqlalchemy as sa


class Proxy:
    """Forwards 127.0.0.1:``port`` to a database server; :meth:`stop` drops every connection and refuses new ones."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.start()

    def url(self, url: str) -> str:
        return sa.make_url(url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    def start(self) -> None:
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen(64)
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            for s in [self._listener, *self._open]:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()  # shut down first: a bare close() does not wake a thread blocked in accept() or recv()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def recording_worker(storage_url: str, store_url: str, worker: int, n_trials: int) -> None:
    """One of several processes tuning the study "faults" with an ExperienceRecorder (a trivial objective)."""
    import time

    import optuna
    from sklearn.datasets import load_iris

    from automl_meta.integrations.optuna import ExperienceRecorder
    from automl_meta.store import TaskDescription

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    recorder = ExperienceRecorder(store=store_url, task=TaskDescription.from_data(*load_iris(return_X_y=True)))

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", worker)
        time.sleep(0.01)
        return (trial.suggest_float("x", -5, 5) - 2.0) ** 2

    study = optuna.load_study(
        study_name="faults", storage=storage_url, sampler=optuna.samplers.RandomSampler(seed=worker)
    )
    study.optimize(objective, n_trials=n_trials, callbacks=[recorder])
