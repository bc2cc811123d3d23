here=$(dirname "$0")
sh "$here/nobrnf.sh" && sh "$here/notrack.sh"
