"""The alliance test bench: the hub-managed service ``testbench``, where registered programs are
submitted as batches, queued durably, run as the submitting team's run account and reported to
the team (see :mod:`smartfab.testbench.service`)."""
