"""Short common English words for rendered text, GUI labels and list items."""

WORDS = tuple(
    """
acid army baby ball band bank bear bell bird blue boat bone book bowl box cake camp card cash cat
city coat cold corn cup dark desk dish dog door drum duck east farm fire fish flag food fork frog
game gift gold good hand hat hill home horn idea iron jazz key king kite lake lamp leaf lime lion
lock map milk mint moon nest news oak park pear pen pink plum pond rain red ring road rock roof
rose salt sand ship shoe silk snow sock song star sun swan tea tent tree wall wave wind wolf wood
""".split()
)

# Rendered text draws from half of them: a vocabulary a tiny model can learn to read in minutes.
OCR_WORDS = WORDS[::2]

# GUI button labels, app titles and field names: short, distinct words.
# (at most four letters: a label fits a third of a 96-pixel screen)
BUTTONS = (
    "OK",
    "Save",
    "Send",
    "Menu",
    "Help",
    "Back",
    "Next",
    "Edit",
    "Copy",
    "Play",
    "Stop",
    "Undo",
    "Open",
    "Find",
    "Home",
    "Exit",
)
FIELDS = ("Name", "City", "Date", "Note", "Tag", "Zip")
APPS = ("Mail", "Notes", "Music", "Photos", "Maps", "Files", "Chat", "Shop")
