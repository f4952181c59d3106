"""Issue 10 item 13: documents load only the app's own static files — no other file, no network."""

import socket
import threading

import pytest
from pypdf import PdfReader
import io

from invoicing.pdf import DOCUMENT_FILES, document_url_fetcher, html_to_pdf


def test_the_fetcher_serves_the_apps_static_files():
    font = DOCUMENT_FILES / "invoicing" / "fonts" / "LedgerlineDocSans.ttf"
    result = document_url_fetcher(font.as_uri())
    content = result.get("string") or result["file_obj"].read()
    assert content[:4] == font.read_bytes()[:4] and len(content) > 1000


@pytest.mark.parametrize("url", [
    "file:///etc/passwd",
    (DOCUMENT_FILES / ".." / "manage.py").as_uri(),  # escapes the static folder
    "file://otherhost/etc/passwd",
    "http://127.0.0.1:1/logo.png",
    "https://example.com/logo.png",
    "ftp://127.0.0.1/x",
])
def test_the_fetcher_refuses_everything_else(url):
    with pytest.raises(ValueError, match="refused"):
        document_url_fetcher(url)


def test_a_rendered_document_makes_no_network_request_and_reads_no_other_file():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(3)
    port = server.getsockname()[1]
    connections = []

    def accept():
        try:
            connections.append(server.accept())
        except OSError:
            pass

    thread = threading.Thread(target=accept)
    thread.start()
    html = (f'<html><body><p>Hello</p><img src="http://127.0.0.1:{port}/x.png">'
            f'<link rel="stylesheet" href="http://127.0.0.1:{port}/x.css">'
            '<img src="file:///etc/hostname"><iframe src="file:///etc/passwd"></iframe></body></html>')
    pdf = html_to_pdf(html)
    thread.join()
    server.close()
    assert connections == []
    text = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert "Hello" in text and "root:" not in text
