"""``zoo leaderboard``: run suites of recipes over seeds into reproducible rows, and render them.

* :mod:`zoo.leaderboard.rows`: what a row holds, and its validation;
* :mod:`zoo.leaderboard.suites`: the suite files in ``benchmarks/suites``;
* :mod:`zoo.leaderboard.run`: one recipe run -> one row;
* :mod:`zoo.leaderboard.show`: rows -> a mean ± std Markdown table and a quality-versus-time plot.
"""
