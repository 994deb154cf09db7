"""See inside your own model in a browser: the logit lens, attention, attributions and
embeddings of a minitf (or GPT-2-format) model, as one offline interactive page.

    data.py      the numbers the page shows, computed with minitf.lens, .attribution, ...
    page.py      the self-contained HTML file (static/: its template, script and styles)
    server.py    the same page on 127.0.0.1, answering new inputs as you type them
    browser.py   headless Chromium for the tests and the README's screenshot
    commands.py  `minitf explore` and `minitf export`

`minitf.explore.page.write_page(path, params, config, tokenizer, inputs)` is the whole
thing in one call. (Nothing is imported here, so `minitf --help` stays quick.)
"""
