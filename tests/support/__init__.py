"""What several test folders share, and the only test code a test module may import from outside its own
folder (tests/support/test_layout.py checks): media files (media), database rows (factories), databases (db),
the in-memory activity world of the workflow tests (fakes), a suite's own Graph API sandbox (graph_sandbox)
and the settings and worker of the suites that run on the real stack (stack).

Fixtures built on these that several folders use are defined in tests/conftest.py."""
