"""Networks: the book's TinySSD (d2l 14.7) and FCN (d2l 14.11), and the feature networks of style
transfer (d2l 14.12), each with the state-dict keys of the files it loads."""
