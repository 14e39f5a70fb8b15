"""vt's built-in plugins: ordinary pluggy plugins registered before any installed one."""
