"""Short common English words for rendered text, GUI labels and list items."""

WORDS = tuple("""
able acid aged also area army away baby back ball band bank base bath bear beat bell belt best bird
blue boat body bone book boot bowl box bread cake call calm camp card care cart case cash cat city
clay coat code cold cook cool corn cost crew cup dark data date dawn deal deep desk dial dish dog
door down draw drum duck dust east easy edge fact farm fast fire fish flag flat food foot fork form
frog game gate gift girl glass goal gold good green hall hand hard hat head heat hill home hope horn
idea iron jazz join jump keep key kind king kite lake lamp land leaf left lime line lion list lock
long love map mask meal milk mint moon nest news nice note oak open page park path pear pen pink
plan plum pond rain red ring road rock roof room rose salt sand seed ship shoe shop sign silk snow
soap sock song star stop sun swan tall tea tent tide time tree wall warm wave wind wolf wood yard
""".split())

# GUI button labels, app titles and field names: short, distinct words.
BUTTONS = ("OK", "Save", "Send", "Menu", "Help", "Back", "Next", "Edit", "Copy", "Play", "Stop", "Undo",
           "Share", "Open", "Close", "Delete")
FIELDS = ("Name", "Email", "Search", "Phone", "City", "Title")
APPS = ("Mail", "Notes", "Music", "Photos", "Maps", "Files", "Chat", "Shop")
