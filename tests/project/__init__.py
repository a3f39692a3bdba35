"""The project as a whole: lint and types, the lock, Binder, the installed wheel, notebooks."""
