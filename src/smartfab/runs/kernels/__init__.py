"""Warm kernels for program test runs: one fresh kernel per run, started ahead of need, then killed.

Starting a kernel the usual way costs a new interpreter, the imports of ipykernel and IPython,
and then the notebook's own imports (numpy, xarray, ...): about a second of CPU before the
first cell runs, for a notebook that may compute for a few milliseconds. A fork server imports
the kernel and the scientific stack once; each kernel is a ``fork()`` of it that initialises its
own ``IPKernelApp`` (sockets, shell, history) exactly as ``ipykernel_launcher`` would, and serves
one notebook. Nothing is shared between kernels after the fork: each has its own copy of the
interpreter, and is killed after its run. Since a kernel starts before its run is known, the
run's working directory and environment are applied when it is acquired, by a silent execution
that leaves no trace in the notebook, the execution count or the In/Out history.

What a warm kernel cannot reproduce is what the preloaded modules computed at import: from the
environment (``MPLBACKEND``, ``OMP_NUM_THREADS``, ``HOME``, ...), from the working directory
(a ``matplotlibrc``, a local module shadowing an installed one). Such a run gets a kernel
started from its kernelspec instead (still a child of the fork server, so it dies with it).

One module per job (this package imports none of them: the fork server's process imports only
what it needs):

- :mod:`~smartfab.runs.kernels.shared`: the process-wide pool (:func:`shared_pool`,
  :func:`close_shared_pool`);
- :mod:`~smartfab.runs.kernels.pool`: :class:`KernelPool` and the :class:`PooledKernel` it
  lends, with its thread-safety rules;
- :mod:`~smartfab.runs.kernels.warm_rules`: when a warm kernel can stand in (:func:`forkable`,
  :func:`is_import_time_variable`, :func:`environment_changes`, :func:`kernel_environment`);
- :mod:`~smartfab.runs.kernels.provisioner`: jupyter_client's view of a fork server's child;
- :mod:`~smartfab.runs.kernels.channels`: waiting on a kernel client's replies;
- :mod:`~smartfab.runs.kernels.forked`: the fork server's use for run kernels
  (:data:`RUN_KERNELS`) and what a forked kernel runs (:func:`serve_kernel`); the fork server
  itself is the host's (:mod:`smartfab.host.forkserver`);
- :mod:`~smartfab.runs.kernels.preload`: what the fork server imports (:func:`preload`).

:class:`~smartfab.errors.KernelStartError` is defined in :mod:`smartfab.errors`.
"""
